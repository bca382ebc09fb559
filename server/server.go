// Package server is the HTTP surface `switchboard serve` runs over a wired
// App: the one router configuration (the App's services, the cursor and
// idempotency keys derived from its master key, a metrics registry with the
// runtime's collectors, readiness on the store) and the http.Server's
// timeouts. cmd/switchboard and the tests that serve the whole app call it,
// so what they serve is what production serves.
package server

import (
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard/switchboard/api"
	"github.com/switchboard/switchboard/wiring"
)

// Options are the operator's limits of the router (the flags of serve).
// The zero value is the api package's defaults.
type Options struct {
	// RateLimit and RateBurst are per partner and per customer's apps.
	RateLimit float64
	RateBurst int
	// TwilioWebhookLimit is the refused Twilio callbacks per second per
	// client address; TrustedProxies the proxies whose X-Forwarded-For
	// names the client.
	TwilioWebhookLimit float64
	TrustedProxies     []netip.Prefix
	// Registry receives the metrics; nil means a new one with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// Now is the clock of the limits; nil means time.Now.
	Now func() time.Time
}

// RouterConfig is the router's configuration over a's services.
func RouterConfig(a *wiring.App, o Options) api.Config {
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return api.Config{
		Tenants:     a.Tenants,
		Tokens:      a.Tokens,
		Contacts:    a.Contacts,
		Idempotency: a.Idempotency,
		Logger:      a.Logger,
		Registry:    reg,
		Ready:       a.DB.Ping,
		RateLimit:   o.RateLimit,
		RateBurst:   o.RateBurst,
		Now:         o.Now,
		CursorKey:   a.CursorKey,
		ErasureKeys: a.Erasure,
		Messages:    a.Messages,
		Webhooks:    a.Webhooks,
		PublicURL:   a.PublicURL,

		TwilioWebhookLimit: o.TwilioWebhookLimit,
		TrustedProxies:     o.TrustedProxies,
	}
}

// Router is the HTTP handler of every route of a.
func Router(a *wiring.App, o Options) *gin.Engine { return api.NewRouter(RouterConfig(a, o)) }

// New returns the http.Server of h at addr, with the timeouts production
// runs and its errors logged at WARN.
func New(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
