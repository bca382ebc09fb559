package api

import (
	"fmt"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/tenants"
)

// Keys of values the middleware keeps in the gin context.
const (
	requestIDKey = "switchboard.requestId"
	loggerKey    = "switchboard.logger"
	partnerKey   = "switchboard.partner"
)

// maxBody is the largest request body accepted.
const maxBody = 1 << 20

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// validRequestID accepts a client's X-Request-Id of 1..128 printable ASCII
// characters; anything else is replaced.
func validRequestID(s string) bool { return switchboard.PrintableASCII(s, 128, false) }

// withRequestID echoes or generates X-Request-Id and puts it, with the
// logger, in the context.
func withRequestID(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if !validRequestID(id) {
			id = uuid.Must(uuid.NewV7()).String()
		}
		c.Set(requestIDKey, id)
		c.Set(loggerKey, log)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// accessLog logs one line per request: never bodies, headers or query values.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := routeLabel(c)
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request",
			slog.String("requestId", requestID(c)), slog.String("method", c.Request.Method),
			slog.String("route", route), slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)))
	}
}

// routeLabel is the route template for logs and metrics ("unmatched" for
// no route): never the path itself, which may carry ids.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// recoverProblem turns a panic into a 500 problem document.
func recoverProblem() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err := fmt.Errorf("panic: %v", r)
				if c.Writer.Written() {
					logger(c).ErrorContext(c.Request.Context(), "panic after the answer started", "requestId", requestID(c), "err", err)
					c.Abort()
					return
				}
				writeProblem(c, err)
			}
		}()
		c.Next()
	}
}

// metrics counts requests and their durations per route.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "HTTP request durations by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) handler() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := routeLabel(c)
		m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
	}
}

// limitBody refuses bodies over 1 MiB (up front when Content-Length says so)
// and bodies that are not JSON.
func limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		if r.ContentLength > maxBody {
			writeProblem(c, errPayloadTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(c.Writer, r.Body, maxBody)
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			if strings.HasPrefix(r.URL.Path, "/v1/webhooks/") {
				break // Twilio's form-encoded callbacks: their handler checks
			}
			if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
				break // no body at all: the handler decides whether it needs one
			}
			mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			cs, hasCharset := params["charset"]
			if err != nil || mt != "application/json" || (hasCharset && !strings.EqualFold(cs, "utf-8")) {
				writeProblem(c, errMediaType)
				return
			}
		}
		c.Next()
	}
}

// bearer returns the credentials of Authorization: Bearer <credentials>,
// the scheme matched case-insensitively (RFC 9110).
func bearer(c *gin.Context) (string, bool) {
	h := c.GetHeader("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// partnerAuth authenticates Authorization: Bearer <partner API key>.
func partnerAuth(svc *tenants.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		key, ok := bearer(c)
		if !ok {
			writeProblem(c, tenants.ErrUnauthorized)
			return
		}
		p, err := svc.AuthenticatePartner(c.Request.Context(), key)
		if err != nil {
			writeProblem(c, err)
			return
		}
		c.Set(partnerKey, p)
		c.Next()
	}
}

func partner(c *gin.Context) tenants.Partner {
	return c.MustGet(partnerKey).(tenants.Partner)
}

// limiter is a token bucket per caller; a bucket idle for 10 minutes is
// forgotten (it would be full again anyway).
type limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex // a bucket's reservation and its headers are one step
	buckets *ttl.Cache[string, *rate.Limiter]
	fails   map[string]*authAllowance // authFailures: addresses with part of their allowance spent
}

func newLimiter(perSecond float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, now: now,
		buckets: ttl.New[string, *rate.Limiter](100_000, 10*time.Minute, now), fails: map[string]*authAllowance{}}
}

// bucket returns caller's bucket, keeping it another 10 minutes.
func (l *limiter) bucket(caller string) *rate.Limiter {
	b, ok := l.buckets.Get(caller)
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
	}
	l.buckets.Add(caller, b)
	return b
}

// reserve takes a token for caller, or says how long to wait for one
// (wait > 0). It also returns what the RateLimit headers tell: the tokens
// left and the seconds until the bucket is full again.
func (l *limiter) reserve(caller string) (wait time.Duration, remaining, reset int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(caller)
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		wait = d
	}
	tokens := max(b.TokensAt(now), 0)
	remaining = int(math.Floor(tokens))
	reset = int(math.Ceil((float64(l.burst) - tokens) / float64(l.rate)))
	return wait, remaining, reset
}

// authFailures limits failed authentications per client address: each
// attempt takes one unit of the address's allowance before its credentials
// are checked (so concurrent guesses cannot all pass a check made before any
// of them failed) and gives it back unless the answer is 401. Once the
// allowance (the limiter's burst) is spent, the address waits for it to
// refill at the limiter's rate, and gets 429 before anything is checked.
func (l *limiter) authFailures() gin.HandlerFunc {
	return func(c *gin.Context) {
		who := c.ClientIP()
		l.mu.Lock()
		ok := l.allowance(who, -1)
		l.mu.Unlock()
		if !ok {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(1/float64(l.rate)))))
			writeProblem(c, errRateLimited)
			return
		}
		c.Next()
		if c.Writer.Status() != http.StatusUnauthorized {
			l.mu.Lock()
			l.allowance(who, +1)
			l.mu.Unlock()
		}
	}
}

// allowance refills the address's allowance for the time passed, then adds
// delta to it (taking fails when nothing is left). Call with l.mu held.
func (l *limiter) allowance(who string, delta float64) bool {
	now := l.now()
	a, ok := l.fails[who]
	if !ok {
		a = &authAllowance{left: float64(l.burst), at: now}
		l.fails[who] = a
	}
	a.left = min(float64(l.burst), a.left+now.Sub(a.at).Seconds()*float64(l.rate))
	a.at = now
	if a.left+delta < 0 {
		return false
	}
	a.left = min(float64(l.burst), a.left+delta)
	if a.left >= float64(l.burst) {
		delete(l.fails, who) // full again: nothing to remember
	}
	return true
}

type authAllowance struct {
	left float64
	at   time.Time
}

// limit rate-limits each caller (as named by who) separately, and tells
// every answer how much of its allowance is left.
func (l *limiter) limit(who func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		wait, remaining, reset := l.reserve(who(c))
		c.Header("RateLimit-Limit", strconv.Itoa(l.burst))
		c.Header("RateLimit-Remaining", strconv.Itoa(remaining))
		c.Header("RateLimit-Reset", strconv.Itoa(reset))
		if wait > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeProblem(c, errRateLimited)
			return
		}
		c.Next()
	}
}
