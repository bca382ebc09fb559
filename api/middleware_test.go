package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/fakeclock"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"

	"github.com/switchboard/switchboard"
)

func TestRateLimitPerPartner(t *testing.T) {
	db := storetest.MustOpen(t)
	svc := tenants.NewService(tenants.Config{Control: db.Control})
	clk := fakeclock.New(time.Now())
	r := NewRouter(Config{Tenants: svc, Registry: prometheus.NewRegistry(), Logger: storetest.Logger(), RateLimit: 0.5, RateBurst: 3, Now: clk.Now})
	_, keyA, _ := svc.CreatePartner(t.Context(), "A")
	_, keyB, _ := svc.CreatePartner(t.Context(), "B")
	get := func(key string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/industries", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		r.ServeHTTP(w, req)
		return w
	}
	for i := range 3 {
		if w := get(keyA); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := get(keyA)
	if w.Code != 429 || !strings.Contains(w.Body.String(), `"code":"rate_limited"`) {
		t.Fatalf("past the burst: %d %s", w.Code, w.Body)
	}
	if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	if w := get(keyB); w.Code != 200 {
		t.Fatalf("another partner is limited too: %d", w.Code)
	}
	// Two seconds later A has earned one token (0.5 per second), not two.
	clk.Add(2 * time.Second)
	if w := get(keyA); w.Code != 200 {
		t.Fatalf("after refilling: %d", w.Code)
	}
	if w := get(keyA); w.Code != 429 {
		t.Fatalf("a second request after one refill: %d", w.Code)
	}
}

// TestRateLimitDefaults: 250 requests within one (frozen) second from one
// partner: the default burst of 200 passes with RateLimit-Remaining counting
// down, then 429 with Retry-After; another partner is not limited by it.
func TestRateLimitDefaults(t *testing.T) {
	db := storetest.MustOpen(t)
	svc := tenants.NewService(tenants.Config{Control: db.Control})
	clk := fakeclock.New(time.Now())
	r := NewRouter(Config{Tenants: svc, Registry: prometheus.NewRegistry(), Logger: storetest.Logger(), Now: clk.Now})
	_, keyA, _ := svc.CreatePartner(t.Context(), "A")
	_, keyB, _ := svc.CreatePartner(t.Context(), "B")
	get := func(key string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/industries", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		r.ServeHTTP(w, req)
		return w
	}
	for i := range 250 {
		w := get(keyA)
		h := w.Header()
		if h.Get("RateLimit-Limit") != "200" {
			t.Fatalf("request %d: RateLimit-Limit %q", i, h.Get("RateLimit-Limit"))
		}
		remaining, _ := strconv.Atoi(h.Get("RateLimit-Remaining"))
		reset, err := strconv.Atoi(h.Get("RateLimit-Reset"))
		if err != nil || reset < 0 || reset > 2 {
			t.Fatalf("request %d: RateLimit-Reset %q", i, h.Get("RateLimit-Reset"))
		}
		if i < 200 {
			if w.Code != 200 || remaining != 199-i {
				t.Fatalf("request %d within the burst: %d, remaining %d", i, w.Code, remaining)
			}
			continue
		}
		if w.Code != 429 || remaining != 0 || h.Get("Retry-After") != "1" {
			t.Fatalf("request %d past the burst: %d, remaining %d, Retry-After %q", i, w.Code, remaining, h.Get("Retry-After"))
		}
	}
	if w := get(keyB); w.Code != 200 || w.Header().Get("RateLimit-Remaining") != "199" {
		t.Fatalf("another partner: %d %q", w.Code, w.Header().Get("RateLimit-Remaining"))
	}
	// A tenth of a second later, 10 requests' worth has come back.
	clk.Add(100 * time.Millisecond)
	if w := get(keyA); w.Code != 200 || w.Header().Get("RateLimit-Remaining") != "9" {
		t.Fatalf("after 100 ms: %d, remaining %q", w.Code, w.Header().Get("RateLimit-Remaining"))
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	r := gin.New()
	r.Use(withRequestID(storetest.Logger()), recoverProblem())
	r.GET("/boom", func(*gin.Context) { panic("secret internal detail") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/boom", nil))
	if w.Code != 500 || w.Header().Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(w.Body.String(), `"code":"internal_error"`) || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("panic answer: %d %s", w.Code, w.Body)
	}
}

func TestRequestIDValidation(t *testing.T) {
	for id, ok := range map[string]bool{"abc-123": true, "": false, strings.Repeat("a", 129): false, "has space": false, "tab\t": false} {
		if validRequestID(id) != ok {
			t.Errorf("validRequestID(%q) = %v", id, !ok)
		}
	}
}

func TestProblemTable(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{&switchboard.VersionConflictError{Current: 4}, 409, "version_conflict"},
		{&tenants.TransitionError{From: tenants.StatusRegistered, Action: "deactivate"}, 409, "invalid_transition"},
		{tenants.ErrSpaceTaken, 409, "space_taken"},
		{tenants.ErrNotFound, 404, "not_found"},
		{tenants.ErrDataShredded, 410, "data_shredded"},
		{tenants.ErrUpstreamUnavailable, 503, "upstream_unavailable"},
		{tenants.ErrTwilioSubaccountLimit, 409, "twilio_subaccount_limit"},
		{switchboard.ErrCustomerNotActive, 409, "customer_not_active"},
		{tenants.ErrUnauthorized, 401, "unauthorized"},
		{&switchboard.ValidationError{Fields: []switchboard.FieldError{{Field: "space", Message: "bad"}}}, 422, "validation_failed"},
		{badRequest("retention.period", "must be an integer"), 400, "malformed_request"},
		{errPayloadTooLarge, 413, "payload_too_large"},
		{http.ErrBodyNotAllowed, 500, "internal_error"},
	}
	for _, tt := range tests {
		p, _ := toProblem(tt.err)
		if p.Status != tt.status || p.Code != tt.code {
			t.Errorf("%v → %d %s, want %d %s", tt.err, p.Status, p.Code, tt.status, tt.code)
		}
	}
	p, _ := toProblem(&switchboard.VersionConflictError{Current: 4})
	if !strings.Contains(p.Detail, "4") {
		t.Errorf("version conflict detail %q lacks the current version", p.Detail)
	}
}

func TestFieldPath(t *testing.T) {
	type item struct {
		Email *string `json:"email"`
	}
	var dst struct {
		Data      []item `json:"data"`
		Retention *struct {
			Period *int `json:"period"`
		} `json:"retention"`
	}
	tests := map[string]string{
		`{"data":[{},{},{},{"email":5}]}`:           "data[3].email",
		`{"retention":{"period":1.5}}`:              "retention.period",
		`{"retention":{"period":"3"}}`:              "retention.period",
		`{"retention":{"period":1,"unknown":true}}`: "retention.unknown",
		`{"data":[],"data":[]}`:                     "data",
	}
	for body, field := range tests {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("POST", "/", strings.NewReader(body))
		err := decodeJSON(c, &dst)
		p, _ := toProblem(err)
		if p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != field {
			t.Errorf("%s: %+v, want 400 naming %s", body, p, field)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"space":"a"}`, `{"expectedVersion":"any"}`, `{"retention":{"strategy":"TEMPORARY","period":3}}`, `[`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest("POST", "/", strings.NewReader(string(b)))
		var dst terminateRequest
		err := decodeJSON(c, &dst)
		if err == nil {
			return
		}
		if p, known := toProblem(err); !known || (p.Status != 400 && p.Status != 413) {
			t.Fatalf("decode error maps to %d %s", p.Status, p.Code)
		}
	})
}

// TestFailedAuthenticationIsLimitedPerAddress: after 100 failed
// authentications a client address gets 429 before any key is checked,
// one more attempt a second later.
func TestFailedAuthenticationIsLimitedPerAddress(t *testing.T) {
	db := storetest.MustOpen(t)
	svc := tenants.NewService(tenants.Config{Control: db.Control})
	clk := fakeclock.New(time.Now())
	r := NewRouter(Config{Tenants: svc, Registry: prometheus.NewRegistry(), Logger: storetest.Logger(), Now: clk.Now})
	_, key, _ := svc.CreatePartner(t.Context(), "A")
	get := func(key, addr string) int {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/v1/industries", nil)
		req.RemoteAddr = addr + ":40000"
		req.Header.Set("Authorization", "Bearer "+key)
		r.ServeHTTP(w, req)
		return w.Code
	}
	for i := range 100 {
		if code := get("sbp_guess_"+strconv.Itoa(i), "192.0.2.1"); code != 401 {
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	if code := get("sbp_guess_21", "192.0.2.1"); code != 429 {
		t.Fatalf("guess past the allowance: %d", code)
	}
	if code := get(key, "192.0.2.1"); code != 429 {
		t.Fatalf("the blocked address with a good key: %d", code)
	}
	if code := get(key, "192.0.2.2"); code != 200 {
		t.Fatalf("another address: %d", code)
	}
	clk.Add(time.Second)
	if code := get(key, "192.0.2.1"); code != 200 {
		t.Fatalf("a second later: %d", code)
	}
}
