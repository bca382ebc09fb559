// Package twiliotest is the Twilio test double: an HTTP server that speaks
// Twilio's REST wire format (HTTP Basic auth with the master credentials,
// form-encoded writes, Twilio's resources, list pages and error bodies) for
// the Accounts API and, under a sub-account, for available and incoming
// phone numbers and messages, so the twilio-go adapter is exercised for
// real.
//
// Invariants:
//   - every answer is one Twilio would give: a resource or list page as JSON,
//     204 with no body for a deletion, or an error body {code, message,
//     more_info, status};
//   - closed is final: a closed sub-account refuses every change (400);
//   - a phone number or message belongs to one account and exists only
//     under that account's path (404 elsewhere, and under an account the
//     double does not know);
//   - a number is bought at most once: one an account holds, one marked
//     unavailable or one in an exhausted area is refused (21422);
//   - a message is deleted only once its status is final (else 20009);
//     a redacted message's body is "";
//   - failures happen only when a test asks for them (FailNext, FailNextOn,
//     LoseNextCreateAnswer, LoseNextMessageAnswer, RefuseNextMessage,
//     SetDelay, SetSubaccountLimit, MarkUnavailable, ExhaustArea), and an
//     injected failure (FailNext, FailNextOn) changes nothing;
//   - a Server is safe for concurrent use and stops when its test ends.
package twiliotest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Routes of the Accounts API, as RouteCount and FailNextOn name them.
// {Sid} stands for any account SID.
const (
	RouteCreate = "POST /2010-04-01/Accounts.json"
	RouteList   = "GET /2010-04-01/Accounts.json"
	RouteFetch  = "GET /2010-04-01/Accounts/{Sid}.json"
	RouteUpdate = "POST /2010-04-01/Accounts/{Sid}.json"
)

// MasterFriendlyName is the FriendlyName of the master account, which
// Twilio lists along with its sub-accounts.
const MasterFriendlyName = "My first Twilio account"

// DefaultSubaccountLimit is Twilio's default number of sub-accounts that
// are not closed a master account may hold.
const DefaultSubaccountLimit = 1000

const accountsPath = "/2010-04-01/Accounts"

// Account is a sub-account as the double holds it.
type Account struct {
	SID          string
	AuthToken    string
	FriendlyName string
	Status       string
	Created      time.Time
	Updated      time.Time
}

// Server is a running Twilio double.
type Server struct {
	srv    *httptest.Server
	master Account

	mu         sync.Mutex
	now        func() time.Time
	accounts   []*Account // sub-accounts, oldest first
	creates    int
	requests   int
	routes     map[string]int
	failLeft   int
	failStatus int
	failOn     map[string]failure // by route
	loseCreate bool
	delay      time.Duration
	limit      int
	pageLimit  int // 0: as many as PageSize asks

	numbers     []*Number  // oldest first
	messages    []*Message // oldest first
	unavailable map[string]bool
	exhausted   map[string]bool // area codes
	loseMessage bool
	refuseNext  int // Twilio code of the next message creation's refusal
}

// failure is what FailNextOn left to inject on one route.
type failure struct{ left, status int }

// NewServer starts a double whose master account is accountSID with
// authToken; it stops when tb ends.
func NewServer(tb testing.TB, accountSID, authToken string) *Server {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	s := &Server{
		master: Account{SID: accountSID, AuthToken: authToken, FriendlyName: MasterFriendlyName,
			Status: "active", Created: now, Updated: now},
		now:         time.Now,
		routes:      map[string]int{},
		failOn:      map[string]failure{},
		limit:       DefaultSubaccountLimit,
		unavailable: map[string]bool{},
		exhausted:   map[string]bool{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the double's base URL, to use as the Twilio API URL.
func (s *Server) URL() string { return s.srv.URL }

// FailNext makes the next n requests, whatever they are, answer status with
// a Twilio error body (and Retry-After: 1 for 429) and change nothing.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = n, status
}

// LoseNextCreateAnswer makes the next sub-account creation happen while its
// answer never reaches the caller: the connection is closed without a
// response.
func (s *Server) LoseNextCreateAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseCreate = true
}

// SetDelay delays every later answer by d (a request whose client gives up
// first is dropped).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetSubaccountLimit makes creating a sub-account fail with Twilio's error
// 21480 once n sub-accounts that are not closed exist (closed ones do not
// count, as at Twilio). The default is DefaultSubaccountLimit.
func (s *Server) SetSubaccountLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

// SetNow sets the clock that stamps date_created and date_updated.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Accounts returns a copy of the sub-accounts, oldest first.
func (s *Server) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, len(s.accounts))
	for i, a := range s.accounts {
		out[i] = *a
	}
	return out
}

// CreateCount is how many sub-accounts were created (a lost answer
// included).
func (s *Server) CreateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Requests is how many requests reached the double, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// FailNextOn makes the next n requests to route (one of the Route
// constants), and no other, answer status with a Twilio error body (and
// Retry-After: 1 for 429) and change nothing. It applies to authenticated
// requests only; FailNext, if armed, goes first.
func (s *Server) FailNextOn(route string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failOn[route] = failure{left: n, status: status}
}

// SetPageLimit makes every list page hold at most n items, whatever
// PageSize asks (page_size says how many a page holds); 0 lifts the limit.
// Callers must follow next_page_uri all the same.
func (s *Server) SetPageLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageLimit = n
}

// RouteCount is how many authenticated requests reached route (one of the
// Route constants), injected failures (FailNext, FailNextOn) excluded.
func (s *Server) RouteCount(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes[route]
}

func randomHex(bytes int) string {
	b := make([]byte, bytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// twilioError writes an error body in Twilio's shape.
func twilioError(w http.ResponseWriter, status, code int, message string) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// twilioDate is Twilio's date format: RFC 1123 with a numeric zone, UTC.
func twilioDate(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

// snake turns "IncomingPhoneNumbers" into "incoming_phone_numbers".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	delay := s.delay
	fail := 0
	if s.failLeft > 0 {
		s.failLeft--
		fail = s.failStatus
	}
	s.mu.Unlock()

	// Reading the whole body first lets the server notice a client that
	// gave up during the delay (it watches the connection only then).
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fail != 0 {
		twilioError(w, fail, 20000+fail, http.StatusText(fail))
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.master.SID || pass != s.master.AuthToken {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}

	route, params, known := match(r.Method, r.URL.Path)
	if !known {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if route == "" {
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if r.Method == http.MethodPost {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			twilioError(w, http.StatusBadRequest, 20001, "Expected a body of type application/x-www-form-urlencoded")
			return
		}
		if err := r.ParseForm(); err != nil {
			twilioError(w, http.StatusBadRequest, 20001, "Malformed form body")
			return
		}
	}

	s.mu.Lock()
	injected := 0
	if f := s.failOn[route]; f.left > 0 {
		f.left--
		s.failOn[route] = f
		injected = f.status
	} else {
		s.routes[route]++
	}
	s.mu.Unlock()
	if injected != 0 {
		twilioError(w, injected, 20000+injected, http.StatusText(injected))
		return
	}

	switch route {
	case RouteCreate:
		s.create(w, r)
	case RouteList:
		s.list(w, r)
	case RouteFetch, RouteUpdate:
		s.account(w, r, params["Sid"])
	default:
		s.serveAccountResource(w, r, route, params)
	}
}

// routes is every route the double serves.
var routes = []string{
	RouteCreate, RouteList, RouteFetch, RouteUpdate,
	RouteAvailableLocal, RouteNumberBuy, RouteNumberList, RouteNumberFetch, RouteNumberRelease,
	RouteMessageCreate, RouteMessageList, RouteMessageFetch, RouteMessageUpdate, RouteMessageDelete,
}

// match finds the route of a request and the values of its path's
// placeholders. known is false when no route has that path (404); route
// is "" when one has it with another method (405).
func match(method, path string) (route string, params map[string]string, known bool) {
	for _, rt := range routes {
		m, pattern, _ := strings.Cut(rt, " ")
		p, ok := matchPath(pattern, path)
		if !ok {
			continue
		}
		known = true
		if m == method {
			return rt, p, true
		}
	}
	return "", nil, known
}

// matchPath matches path against pattern, whose segments are literal or
// a placeholder with a literal suffix ("{Sid}.json"); a placeholder
// matches a non-empty segment.
func matchPath(pattern, path string) (map[string]string, bool) {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	params := map[string]string{}
	for i, p := range ps {
		name, suffix, isParam := strings.Cut(strings.TrimPrefix(p, "{"), "}")
		if !strings.HasPrefix(p, "{") || !isParam {
			if p != xs[i] {
				return nil, false
			}
			continue
		}
		v, ok := strings.CutSuffix(xs[i], suffix)
		if !ok || v == "" {
			return nil, false
		}
		params[name] = v
	}
	return params, true
}

// lose closes the connection of w without an answer.
func lose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// net/http closes the connection without a response.
	panic(http.ErrAbortHandler)
}

// pageSize reads PageSize and Page as Twilio does; ok is false once it has
// answered a refusal.
func pageSize(w http.ResponseWriter, q url.Values) (size, page int, ok bool) {
	size = 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			twilioError(w, http.StatusBadRequest, 20001, "PageSize must be an integer from 1 to 1000")
			return 0, 0, false
		}
		size = n
	}
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			twilioError(w, http.StatusBadRequest, 20001, "Page must be a non-negative integer")
			return 0, 0, false
		}
		page = n
	}
	return size, page, true
}

// writePage answers one page of a list in Twilio's shape: the page's items
// under key, and page URIs on path that keep filters. sids are the items'
// SIDs, for page tokens. A single list has one page only, the first
// (Twilio's available numbers).
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, path, key string, filters url.Values, all []map[string]any, sids []string, single bool) {
	q := r.URL.Query()
	size, page, ok := pageSize(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.pageLimit > 0 {
		size = min(size, s.pageLimit)
	}
	s.mu.Unlock()
	if single {
		page = 0
		all = all[:min(size, len(all))]
	}

	start := min(page*size, len(all))
	end := min(start+size, len(all))
	items := all[start:end]
	if items == nil {
		items = []map[string]any{}
	}
	pageURI := func(p int, token string) string {
		v := url.Values{}
		for k, vs := range filters {
			v[k] = vs
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(p))
		if token != "" {
			v.Set("PageToken", token)
		}
		return path + "?" + v.Encode()
	}
	var next, prev any
	if end < len(all) {
		next = pageURI(page+1, "PA"+sids[end-1])
	}
	if page > 0 && start > 0 {
		prev = pageURI(page-1, "PB"+sids[start])
	}
	writeJSON(w, http.StatusOK, map[string]any{
		key:                 items,
		"end":               max(end-1, start),
		"first_page_uri":    pageURI(0, ""),
		"next_page_uri":     next,
		"page":              page,
		"page_size":         size,
		"previous_page_uri": prev,
		"start":             start,
		"uri":               pageURI(page, q.Get("PageToken")),
	})
}
