package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
	"github.com/switchboard/switchboard/webhooks"
	"github.com/switchboard/switchboard/wiring"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

const (
	testMasterSID   = "AC0000000000000000000000000000000a"
	testMasterToken = "fedcba9876543210fedcba9876543210"
)

var testIndustry = tenants.Industries()[3].ID

const testIssuer = wiringtest.Issuer

// testAPI is the real router over the real engine, keyring and twilio-go
// adapter, with the Twilio double behind it.
type testAPI struct {
	srv        *httptest.Server
	router     *gin.Engine
	tokens     *tokens.Service
	clock      *fakeclock.Clock
	master     *crypto.MasterKey
	masterFile string
	db         *store.DB
	svc        *tenants.Service
	twilio     *twiliotest.Server
	contract   *contractChecker
	key        string // a partner's API key
	other      string // another partner's API key
	platform   *wiringtest.Platform
}

func newTestAPI(t *testing.T) *testAPI { return newTestAPIWith(t, apiOptions{}) }

// apiOptions vary a test API.
type apiOptions struct {
	// sandbox: the sandbox provider instead of the twilio-go adapter and
	// the double (its status callbacks reach the test server).
	sandbox bool
	// deliveryDelay is the sandbox's delay before "delivered".
	deliveryDelay time.Duration
	// messaging tunes the messaging service (attempt lease, backoff).
	messaging messages.Config
	// noSender: no sender runs (a test drives it).
	noSender bool
	// logs, if set, receives every log line of the router and messaging.
	logs io.Writer
	// webhookLimit and trustedProxies are the router's
	// TwilioWebhookLimit and TrustedProxies; webhookClock puts the
	// router's limits on the test's clock.
	webhookLimit   float64
	trustedProxies []netip.Prefix
	webhookClock   bool
}

func newTestAPIWith(t *testing.T, o apiOptions) *testAPI {
	t.Helper()
	tw := twiliotest.NewServer(t, testMasterSID, testMasterToken)
	client, err := twilio.NewClient(twilio.Config{AccountSID: testMasterSID, AuthToken: testMasterToken, APIURL: tw.URL(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Now())
	allowPrivate := true // the tests' receivers listen on 127.0.0.1
	opts := wiringtest.Options{Twilio: client, Now: clk.Now, Messaging: o.messaging,
		Sandbox:  twilio.SandboxConfig{DeliveryDelay: o.deliveryDelay},
		Webhooks: wiring.WebhooksConfig{AllowPrivate: &allowPrivate, RetryScale: 0.0001}}
	if o.sandbox {
		opts.Twilio, tw = nil, nil
	}
	log := storetest.Logger()
	if o.logs != nil {
		log = slog.New(slog.NewJSONHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		opts.Messaging.Logger = log
	}
	p := wiringtest.New(t, opts)
	var routerNow func() time.Time
	if o.webhookClock {
		routerNow = clk.Now
	}
	// The services come from wiring.Build (through wiringtest); the router
	// is built here because server.Router imports this package, which its
	// own tests cannot. server's tests serve server.Router itself.
	router := NewRouter(Config{
		TwilioWebhookLimit: o.webhookLimit,
		TrustedProxies:     o.trustedProxies,
		Now:                routerNow,
		Tenants:            p.Tenants,
		Tokens:             p.Tokens,
		Contacts:           p.Contacts,
		Messages:           p.Messages,
		Webhooks:           p.Webhooks,
		PublicURL:          p.PublicURL,
		Idempotency:        p.Idempotency,
		ErasureKeys:        p.Erasure,
		CursorKey:          p.CursorKey,
		Logger:             log,
		Registry:           prometheus.NewRegistry(),
		Ready:              p.DB.Ping,
		RateLimit:          1000,
		RateBurst:          1000,
	})
	srv := p.Serve(t, router)
	if !o.noSender {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Messages.Run(ctx, messages.SenderOptions{Poll: 50 * time.Millisecond})
		}()
		whDone := make(chan struct{})
		go func() {
			defer close(whDone)
			p.Webhooks.Run(ctx, webhooks.WorkerOptions{Poll: 50 * time.Millisecond})
		}()
		t.Cleanup(func() { cancel(); <-done; <-whDone })
	}
	_, key, err := p.Tenants.CreatePartner(t.Context(), "Partner A")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := p.Tenants.CreatePartner(t.Context(), "Partner B")
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{srv: srv, router: router, tokens: p.Tokens, clock: clk, master: p.Master, masterFile: p.MasterKeyFile, db: p.DB, svc: p.Tenants, twilio: tw,
		contract: newContractChecker(t), key: key, other: other, platform: p}
}

// response is an answer as the tests read it.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r response) problem(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status || r.Body["code"] != code {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("problem content type %q", ct)
	}
	if r.Body["status"] != float64(status) || r.Body["requestId"] != r.Header.Get("X-Request-Id") || r.Body["requestId"] == "" {
		t.Fatalf("problem document %s", r.Raw)
	}
}

func (r response) field(t *testing.T, field string) {
	t.Helper()
	errs, _ := r.Body["errors"].([]any)
	for _, e := range errs {
		if e.(map[string]any)["field"] == field {
			return
		}
	}
	t.Fatalf("problem does not name field %q: %s", field, r.Raw)
}

type req struct {
	method, path, key string
	body              string
	header            map[string]string
	invalid           bool // the request breaks the contract on purpose: check only the response
	unrouted          bool // no such route in the contract: nothing to check it against
}

func (a *testAPI) do(t *testing.T, r req) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, a.srv.URL+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s %s: no X-Request-Id", r.method, r.path)
	}
	// Check the exchange against the OpenAPI document.
	check := hr.Clone(t.Context())
	check.Body = io.NopCloser(strings.NewReader(r.body))
	switch {
	case r.unrouted:
	case r.invalid:
		a.contract.CheckResponse(t, check, resp, raw)
	default:
		a.contract.Check(t, check, []byte(r.body), resp, raw)
	}
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: bad JSON %s", r.method, r.path, raw)
		}
	}
	return out
}

func (a *testAPI) register(t *testing.T, space string) map[string]any {
	t.Helper()
	r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key,
		body: fmt.Sprintf(`{"space":%q,"industryId":%q,"label":"Label %s"}`, space, testIndustry, space)})
	if r.Status != 201 {
		t.Fatalf("register %s: %d %s", space, r.Status, r.Raw)
	}
	return r.Body
}

func (a *testAPI) activate(t *testing.T, id string) map[string]any {
	t.Helper()
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/activate", key: a.key, body: `{}`})
	if r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	return r.Body
}

const contactBody = `{"expectedVersion":%s,"businessName":"  Corner Bakery ","phoneNumber":"+14165550100",
	"addressLine1":"1 King St W","postalCode":"M5H 1A1","province":"ON","country":"CA"}`

var customerKeys = []string{"id", "partnerId", "space", "label", "industryId", "status", "version", "contactInfo",
	"twilio", "retention", "createdAt", "updatedAt", "activatedAt", "deactivatedAt", "terminatedAt", "shreddedAt"}

func wantCustomer(t *testing.T, c map[string]any, status string, version int) {
	t.Helper()
	if len(c) != len(customerKeys) {
		t.Fatalf("customer has keys %v, want exactly %v", c, customerKeys)
	}
	for _, k := range customerKeys {
		if _, ok := c[k]; !ok {
			t.Fatalf("customer lacks %q: %v", k, c)
		}
	}
	if c["status"] != status || c["version"] != float64(version) {
		t.Fatalf("customer is %v v%v, want %s v%d", c["status"], c["version"], status, version)
	}
	for _, k := range []string{"createdAt", "updatedAt", "activatedAt", "deactivatedAt", "terminatedAt", "shreddedAt"} {
		if s, ok := c[k].(string); ok {
			if _, err := time.Parse("2006-01-02T15:04:05.000Z", s); err != nil {
				t.Fatalf("%s = %q is not RFC 3339 UTC with milliseconds", k, s)
			}
		}
	}
}

func TestLifecycleOverHTTP(t *testing.T) {
	a := newTestAPI(t)
	r := a.do(t, req{method: "GET", path: "/v1/industries", key: a.key})
	if r.Status != 200 || len(r.Body["items"].([]any)) != 20 || r.Body["nextCursor"] != nil {
		t.Fatalf("industries: %d %s", r.Status, r.Raw)
	}

	r = a.do(t, req{method: "POST", path: "/v1/customers", key: a.key,
		body: fmt.Sprintf(`{"space":"bakery","industryId":%q,"label":"Corner Bakery"}`, testIndustry)})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	c := r.Body
	wantCustomer(t, c, "REGISTERED", 1)
	id := c["id"].(string)
	if c["label"] != "Corner Bakery" || c["contactInfo"] != nil || c["twilio"] != nil || c["retention"] != nil || c["activatedAt"] != nil {
		t.Fatalf("registered: %s", r.Raw)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/customers/"+id {
		t.Fatalf("Location %q", loc)
	}

	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/activate", key: a.key, body: `{"expectedVersion":1}`})
	wantCustomer(t, r.Body, "ACTIVE", 2)
	tw := r.Body["twilio"].(map[string]any)
	if !strings.HasPrefix(tw["accountSid"].(string), "AC") || tw["status"] != "active" {
		t.Fatalf("twilio %v", tw)
	}
	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/activate", key: a.key, body: `{"expectedVersion":2}`})
	if r.Status != 200 {
		t.Fatalf("second activate: %d %s", r.Status, r.Raw)
	}
	wantCustomer(t, r.Body, "ACTIVE", 2)

	r = a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/contact-info", key: a.key, body: fmt.Sprintf(contactBody, "2")})
	if r.Status != 200 {
		t.Fatalf("contact info: %d %s", r.Status, r.Raw)
	}
	wantCustomer(t, r.Body, "ACTIVE", 3)
	ci := r.Body["contactInfo"].(map[string]any)
	want := map[string]any{"businessName": "Corner Bakery", "secondaryName": nil, "phoneNumber": "+14165550100",
		"addressLine1": "1 King St W", "addressLine2": nil, "postalCode": "M5H 1A1", "province": "ON", "country": "CA"}
	if len(ci) != len(want) {
		t.Fatalf("contactInfo %v", ci)
	}
	for k, v := range want {
		if ci[k] != v {
			t.Fatalf("contactInfo.%s = %v, want %v", k, ci[k], v)
		}
	}

	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key, body: `{"expectedVersion":"any"}`})
	wantCustomer(t, r.Body, "DEACTIVATED", 4)
	if r.Body["twilio"].(map[string]any)["status"] != "suspended" || r.Body["deactivatedAt"] == nil {
		t.Fatalf("deactivated: %s", r.Raw)
	}
	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key, body: `{}`})
	wantCustomer(t, r.Body, "DEACTIVATED", 4)
	// Contact info may change while DEACTIVATED.
	r = a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/contact-info", key: a.key, body: fmt.Sprintf(contactBody, "4")})
	wantCustomer(t, r.Body, "DEACTIVATED", 5)
	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/activate", key: a.key, body: `{"expectedVersion":5}`})
	wantCustomer(t, r.Body, "ACTIVE", 6)

	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
		body: `{"expectedVersion":6,"retention":{"strategy":"TEMPORARY","period":3}}`})
	wantCustomer(t, r.Body, "TERMINATED", 7)
	ret := r.Body["retention"].(map[string]any)
	term, _ := time.Parse(time.RFC3339, r.Body["terminatedAt"].(string))
	shredAt, _ := time.Parse(time.RFC3339, ret["shredAt"].(string))
	if ret["strategy"] != "TEMPORARY" || ret["period"] != float64(3) || !shredAt.Equal(tenants.AddMonths(term, 3)) {
		t.Fatalf("retention %v", ret)
	}
	if r.Body["twilio"].(map[string]any)["status"] != "closed" {
		t.Fatalf("terminate did not close the sub-account: %s", r.Raw)
	}

	r = a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events", key: a.key})
	items := r.Body["items"].([]any)
	types := []string{"customer.registered", "customer.activated", "customer.contact_info_updated", "customer.deactivated",
		"customer.contact_info_updated", "customer.activated", "customer.terminated"}
	if len(items) != len(types) || r.Body["nextCursor"] != nil {
		t.Fatalf("events: %s", r.Raw)
	}
	for i, it := range items {
		e := it.(map[string]any)
		if e["type"] != types[i] || e["version"] != float64(i+1) || e["id"] == "" || e["at"] == nil {
			t.Fatalf("event %d: %v", i, e)
		}
		if bytes.Contains(r.Raw, []byte("Corner Bakery")) || bytes.Contains(r.Raw, []byte("King St")) {
			t.Fatal("events carry personal data")
		}
	}

	r = a.do(t, req{method: "GET", path: "/v1/customers?status=TERMINATED&limit=10", key: a.key})
	if r.Status != 200 || len(r.Body["items"].([]any)) != 1 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
}

func TestNoRetentionAnswersShredded(t *testing.T) {
	a := newTestAPI(t)
	c := a.activate(t, a.register(t, "gone")["id"].(string))
	id := c["id"].(string)
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
		body: `{"expectedVersion":2,"retention":{"strategy":"NO_RETENTION","period":5}}`})
	if r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Raw)
	}
	wantCustomer(t, r.Body, "SHREDDED", 4)
	if r.Body["label"] != nil || r.Body["contactInfo"] != nil || r.Body["shreddedAt"] == nil ||
		r.Body["retention"].(map[string]any)["period"] != nil {
		t.Fatalf("NO_RETENTION answer: %s", r.Raw)
	}
	r = a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events", key: a.key})
	items := r.Body["items"].([]any)
	if last := items[len(items)-1].(map[string]any); last["type"] != "customer.shredded" || last["version"] != float64(4) {
		t.Fatalf("events %s", r.Raw)
	}
	// Everything after is an invalid transition.
	for _, p := range []string{"activate", "deactivate"} {
		a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/" + p, key: a.key, body: `{}`}).problem(t, 409, "invalid_transition")
	}
}

func TestProblemDocuments(t *testing.T) {
	a := newTestAPI(t)
	reg := a.register(t, "problems")
	id := reg["id"].(string)
	path := "/v1/customers/" + id

	t.Run("401 without a key", func(t *testing.T) {
		r := a.do(t, req{method: "GET", path: "/v1/customers", invalid: true})
		r.problem(t, 401, "unauthorized")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Fatal("no WWW-Authenticate")
		}
	})
	t.Run("401 with a wrong key", func(t *testing.T) {
		a.do(t, req{method: "GET", path: "/v1/customers", key: a.key + "x", invalid: true}).problem(t, 401, "unauthorized")
		a.do(t, req{method: "GET", path: "/v1/customers", key: "sbp_aaaaaaaaaaaa_" + strings.Repeat("A", 43), invalid: true}).problem(t, 401, "unauthorized")
	})
	t.Run("404 for another partner's customer", func(t *testing.T) {
		a.do(t, req{method: "GET", path: path, key: a.other}).problem(t, 404, "not_found")
		a.do(t, req{method: "POST", path: path + "/activate", key: a.other, body: `{}`}).problem(t, 404, "not_found")
		a.do(t, req{method: "GET", path: path + "/events", key: a.other}).problem(t, 404, "not_found")
		a.do(t, req{method: "GET", path: "/v1/customers/not-a-uuid", key: a.key}).problem(t, 404, "not_found")
	})
	t.Run("422 names the field", func(t *testing.T) {
		r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true,
			body: fmt.Sprintf(`{"space":"Bad Space","industryId":%q,"label":"x"}`, testIndustry)})
		r.problem(t, 422, "validation_failed")
		r.field(t, "space")
		r = a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true, body: `{"space":"okay","label":""}`})
		r.problem(t, 422, "validation_failed")
		r.field(t, "industryId")
		r.field(t, "label")
		r = a.do(t, req{method: "POST", path: path + "/terminate", key: a.key, invalid: true, body: `{"retention":{"strategy":"TEMPORARY"}}`})
		r.problem(t, 422, "validation_failed")
		r.field(t, "retention.period")
		r = a.do(t, req{method: "POST", path: path + "/terminate", key: a.key, invalid: true, body: `{"retention":{"strategy":"TEMPORARY","period":121}}`})
		r.field(t, "retention.period")
		r = a.do(t, req{method: "GET", path: "/v1/customers?limit=abc", key: a.key, invalid: true})
		r.problem(t, 422, "validation_failed")
		r.field(t, "limit")
		a.do(t, req{method: "GET", path: "/v1/customers?limit=201", key: a.key, invalid: true}).field(t, "limit")
		a.do(t, req{method: "GET", path: "/v1/customers?limit=0", key: a.key, invalid: true}).field(t, "limit")
		a.do(t, req{method: "GET", path: "/v1/customers?status=ALIVE", key: a.key, invalid: true}).field(t, "status")
	})
	t.Run("400 names the field", func(t *testing.T) {
		r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true,
			body: fmt.Sprintf(`{"space":"x1","industryId":%q,"label":"x","color":"red"}`, testIndustry)})
		r.problem(t, 400, "malformed_request")
		r.field(t, "color")
		r = a.do(t, req{method: "POST", path: path + "/activate", key: a.key, invalid: true, body: `{"expectedVersion":1.5}`})
		r.problem(t, 400, "malformed_request")
		r.field(t, "expectedVersion")
		r = a.do(t, req{method: "POST", path: path + "/terminate", key: a.key, invalid: true, body: `{"retention":{"strategy":"TEMPORARY","period":"3"}}`})
		r.problem(t, 400, "malformed_request")
		r.field(t, "retention.period")
		a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true, body: `{"space":"x1",`}).problem(t, 400, "malformed_request")
		r = a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true, body: `{"space":"x1","space":"x2"}`})
		r.problem(t, 400, "malformed_request")
		r.field(t, "space")
	})
	t.Run("415 and 413", func(t *testing.T) {
		a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true, body: `{}`,
			header: map[string]string{"Content-Type": "text/plain"}}).problem(t, 415, "unsupported_media_type")
		big := `{"space":"big","industryId":"` + testIndustry + `","label":"` + strings.Repeat("x", 1<<20) + `"}`
		a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, invalid: true, body: big}).problem(t, 413, "payload_too_large")
	})
	t.Run("409 version conflict, invalid transition, space taken", func(t *testing.T) {
		r := a.do(t, req{method: "POST", path: path + "/activate", key: a.key, body: `{"expectedVersion":9}`})
		r.problem(t, 409, "version_conflict")
		if !strings.Contains(r.Body["detail"].(string), "1") {
			t.Fatalf("detail does not give the current version: %s", r.Raw)
		}
		a.do(t, req{method: "POST", path: path + "/deactivate", key: a.key, body: `{}`}).problem(t, 409, "invalid_transition")
		a.do(t, req{method: "PUT", path: path + "/contact-info", key: a.key, body: fmt.Sprintf(contactBody, `"any"`)}).problem(t, 409, "invalid_transition")
		a.do(t, req{method: "POST", path: "/v1/customers", key: a.key,
			body: fmt.Sprintf(`{"space":"problems","industryId":%q,"label":"again"}`, testIndustry)}).problem(t, 409, "space_taken")
	})
	t.Run("503 when Twilio is down changes nothing", func(t *testing.T) {
		a.twilio.FailNext(1, 503)
		r := a.do(t, req{method: "POST", path: path + "/activate", key: a.key, body: `{"expectedVersion":1}`})
		r.problem(t, 503, "upstream_unavailable")
		r = a.do(t, req{method: "GET", path: path, key: a.key})
		wantCustomer(t, r.Body, "REGISTERED", 1)
	})
	t.Run("409 at Twilio's sub-account limit", func(t *testing.T) {
		a.twilio.SetSubaccountLimit(len(a.twilio.Accounts()))
		a.do(t, req{method: "POST", path: path + "/activate", key: a.key, body: `{}`}).problem(t, 409, "twilio_subaccount_limit")
		a.twilio.SetSubaccountLimit(1000)
	})
	t.Run("404 and 405 for unknown routes", func(t *testing.T) {
		a.do(t, req{method: "GET", path: "/v1/nothing", key: a.key, unrouted: true}).problem(t, 404, "not_found")
		a.do(t, req{method: "DELETE", path: "/v1/customers", key: a.key, unrouted: true}).problem(t, 405, "method_not_allowed")
	})
	// None of that changed the customer.
	r := a.do(t, req{method: "GET", path: path, key: a.key})
	wantCustomer(t, r.Body, "REGISTERED", 1)
}

func TestIdempotentRegistration(t *testing.T) {
	a := newTestAPI(t)
	body := fmt.Sprintf(`{"space":"once","industryId":%q,"label":"Only once"}`, testIndustry)
	hdr := map[string]string{"Idempotency-Key": "reg-0001"}
	first := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr})
	if first.Status != 201 || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", first.Status, first.Raw)
	}
	again := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr})
	if again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Raw, first.Raw) {
		t.Fatalf("replay: %d %s (replayed %q)", again.Status, again.Raw, again.Header.Get("Idempotent-Replayed"))
	}
	if again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatal("replay lost the Location header")
	}
	// The same request re-formatted, its members reordered: still a replay.
	reordered := fmt.Sprintf("{\n  \"label\": \"Only once\",\n  \"industryId\": %q, \"space\":\"once\" }", testIndustry)
	if r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: reordered, header: hdr}); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("reordered replay: %d %s", r.Status, r.Raw)
	}
	other := fmt.Sprintf(`{"space":"twice","industryId":%q,"label":"Other"}`, testIndustry)
	a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: other, header: hdr}).problem(t, 422, "idempotency_key_reused")
	// The key is scoped to the caller: another partner may use it.
	r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.other, body: other, header: hdr})
	if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("other partner, same key: %d %s", r.Status, r.Raw)
	}
	r = a.do(t, req{method: "GET", path: "/v1/customers", key: a.key})
	if n := len(r.Body["items"].([]any)); n != 1 {
		t.Fatalf("%d customers after a replay, want 1", n)
	}
	a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, invalid: true,
		header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}).problem(t, 422, "validation_failed")
}

func TestRequestIDAndOperations(t *testing.T) {
	a := newTestAPI(t)
	r := a.do(t, req{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "trace-abc-123"}})
	if r.Status != 200 || r.Header.Get("X-Request-Id") != "trace-abc-123" {
		t.Fatalf("healthz: %d, request id %q", r.Status, r.Header.Get("X-Request-Id"))
	}
	r = a.do(t, req{method: "GET", path: "/readyz"})
	if r.Status != 200 {
		t.Fatalf("readyz: %d %s", r.Status, r.Raw)
	}
	r = a.do(t, req{method: "GET", path: "/metrics"})
	if r.Status != 200 || !bytes.Contains(r.Raw, []byte("switchboard_http_requests_total")) {
		t.Fatalf("metrics: %d", r.Status)
	}
	r = a.do(t, req{method: "GET", path: "/openapi.yaml"})
	if r.Status != 200 || !bytes.Contains(r.Raw, []byte("openapi: 3.1")) {
		t.Fatalf("openapi: %d", r.Status)
	}
}

// TestTwilio404IsNotACustomer404: Twilio answering 404 for a customer's
// sub-account is an upstream problem (502, nothing changed), never "no such
// customer"; closing a sub-account Twilio no longer knows is done.
func TestTwilio404IsNotACustomer404(t *testing.T) {
	a := newTestAPI(t)
	id := a.activate(t, a.register(t, "lost-sub")["id"].(string))["id"].(string)
	a.twilio.FailNext(1, 404)
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key, body: `{"expectedVersion":2}`})
	r.problem(t, 502, "twilio_subaccount_missing")
	got := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key})
	wantCustomer(t, got.Body, "ACTIVE", 2)

	a.twilio.FailNext(1, 404)
	r = a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
		body: `{"expectedVersion":2,"retention":{"strategy":"INDEFINITE"}}`})
	if r.Status != 200 {
		t.Fatalf("terminate with the sub-account gone at Twilio: %d %s", r.Status, r.Raw)
	}
	wantCustomer(t, r.Body, "TERMINATED", 3)
	if tw := r.Body["twilio"].(map[string]any); tw["status"] != "closed" {
		t.Fatalf("twilio after terminate: %v", tw)
	}
}

// TestShreddedKeysLeaveTheFiles: once customers are shredded, no file under
// the data dir holds any of their wrapped keys (raw or as the engine's
// base64), so a copy of the data dir and the master key recover none.
func TestShreddedKeysLeaveTheFiles(t *testing.T) {
	a := newTestAPI(t)
	ctx := t.Context()
	var ids []string
	var wrapped [][]byte
	for i := range 6 {
		c := a.activate(t, a.register(t, fmt.Sprintf("gone-%d", i))["id"].(string))
		ids = append(ids, c["id"].(string))
		var doc struct {
			Wrapped []byte `bson:"wrapped"`
		}
		if err := a.db.Keys.Collection("customer_keys").FindOne(ctx, bson.D{{Key: "_id", Value: c["id"]}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		wrapped = append(wrapped, doc.Wrapped)
	}
	for _, id := range ids {
		r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
			body: `{"retention":{"strategy":"NO_RETENTION"}}`})
		if r.Status != 200 || r.Body["status"] != "SHREDDED" {
			t.Fatalf("terminate: %d %s", r.Status, r.Raw)
		}
	}
	dir := a.db.DataDir()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // the socket
		}
		for i, w := range wrapped {
			if bytes.Contains(b, w) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(w))) {
				t.Errorf("%s still holds the wrapped key of shredded customer %d", filepath.Base(path), i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And with the master key nothing opens: the keyring has no key left.
	for _, id := range ids {
		if _, err := a.platform.Keyring.Cipher(ctx, id); !errors.Is(err, crypto.ErrKeyNotFound) {
			t.Fatalf("customer %s: %v", id, err)
		}
	}
}

// TestRetentionChangeOverHTTP: a legal hold and its lifting through the
// route, contract-checked.
func TestRetentionChangeOverHTTP(t *testing.T) {
	a := newTestAPI(t)
	id := a.activate(t, a.register(t, "held")["id"].(string))["id"].(string)
	a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/retention", key: a.key, body: `{"strategy":"INDEFINITE"}`}).problem(t, 409, "invalid_transition")
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key, body: `{"retention":{"strategy":"TEMPORARY","period":3}}`})
	wantCustomer(t, r.Body, "TERMINATED", 3)
	r = a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/retention", key: a.key, body: `{"expectedVersion":3,"strategy":"INDEFINITE"}`})
	wantCustomer(t, r.Body, "TERMINATED", 4)
	if ret := r.Body["retention"].(map[string]any); ret["strategy"] != "INDEFINITE" || ret["shredAt"] != nil {
		t.Fatalf("hold: %v", ret)
	}
	a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/retention", key: a.key, body: `{"strategy":"TEMPORARY"}`}).field(t, "period")
	r = a.do(t, req{method: "PUT", path: "/v1/customers/" + id + "/retention", key: a.key, body: `{"expectedVersion":4,"strategy":"NO_RETENTION"}`})
	wantCustomer(t, r.Body, "SHREDDED", 6)
	ev := a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events", key: a.key})
	types := ""
	for _, e := range ev.Body["items"].([]any) {
		types += e.(map[string]any)["type"].(string) + " "
	}
	if !strings.Contains(types, "customer.terminated customer.retention_changed customer.retention_changed customer.shredded") {
		t.Fatalf("events: %s", types)
	}
}
