package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // as main does: no debug route dump
	storetest.Main(m)
}

// contractChecker validates requests and answers against openapi.yaml, so
// every exchange a test makes also tests the contract. Build one per test
// (or per test API) with newContractChecker; it is safe for concurrent use.
//
// For an exchange that should follow the contract:
//
//	cc.Check(t, req, reqBody, resp, respBody)
//
// and for a request that breaks it on purpose (bad JSON, an unknown field, a
// wrong content type, no credentials), check only the answer:
//
//	cc.CheckResponse(t, req, resp, respBody)
//
// req needs only its method, URL and headers (its body is not read: pass
// the bytes sent); resp needs its status and headers (its body is not read:
// pass the bytes received). Problem answers (application/problem+json) are
// checked like any other: status listed for the route, every member of the
// document, a known code, and the required headers (X-Request-Id on every
// answer, WWW-Authenticate on 401, Retry-After on 429 and 503).
type contractChecker struct {
	v validator.Validator
}

// newContractChecker parses openapi.yaml, fails tb unless it is valid
// OpenAPI 3.1, and returns a checker over it that also asserts formats
// (uuid, date-time, date).
func newContractChecker(tb testing.TB) *contractChecker {
	tb.Helper()
	doc, err := libopenapi.NewDocument(openapiYAML)
	if err != nil {
		tb.Fatalf("openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		tb.Fatalf("openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			tb.Errorf("openapi.yaml is not valid OpenAPI 3.1: %s: %s", e.Message, e.Reason)
		}
		tb.FailNow()
	}
	return &contractChecker{v: v}
}

// Check fails t (without stopping it) when the request or the answer breaks
// the contract.
func (cc *contractChecker) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.ContentLength = int64(len(reqBody))
	if ok, errs := cc.v.ValidateHttpRequestSync(r); !ok {
		for _, e := range errs {
			t.Errorf("request %s %s breaks the contract: %s: %s%s", req.Method, req.URL.Path, e.Message, e.Reason, schemaDetails(e))
		}
	}
	cc.CheckResponse(t, req, resp, respBody)
}

// CheckResponse fails t (without stopping it) when the answer breaks the
// contract. Use it alone for requests that break the contract on purpose.
func (cc *contractChecker) CheckResponse(t testing.TB, req *http.Request, resp *http.Response, respBody []byte) {
	t.Helper()
	rs := *resp
	rs.Body = io.NopCloser(bytes.NewReader(respBody))
	r := req.Clone(context.Background())
	r.Body = http.NoBody
	if ok, errs := cc.v.ValidateHttpResponse(r, &rs); !ok {
		for _, e := range errs {
			t.Errorf("answer %d to %s %s breaks the contract: %s: %s%s\n%s", resp.StatusCode, req.Method, req.URL.Path, e.Message, e.Reason, schemaDetails(e), respBody)
		}
	}
}

// schemaDetails names the members that failed a schema, which the summary
// of a validation error leaves out.
func schemaDetails(e *verrors.ValidationError) string {
	var b strings.Builder
	for _, f := range e.SchemaValidationErrors {
		fmt.Fprintf(&b, "\n\t%s: %s", f.FieldPath, f.Reason)
	}
	return b.String()
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	newContractChecker(t)
}

var ginParam = regexp.MustCompile(`:([A-Za-z]+)`)

// TestEveryRouteIsDocumented: the gin routes and the document's operations
// are the same set.
func TestEveryRouteIsDocumented(t *testing.T) {
	r := newTestAPI(t).router
	var routes []string
	heads := map[string]bool{}
	for _, rt := range r.Routes() {
		if rt.Method == "HEAD" {
			heads[rt.Path] = true // every GET route answers HEAD too: the document says so once
			continue
		}
		routes = append(routes, rt.Method+" "+ginParam.ReplaceAllString(rt.Path, "{$1}"))
	}
	for _, rt := range r.Routes() {
		if rt.Method == "GET" && !heads[rt.Path] {
			t.Errorf("GET %s does not answer HEAD", rt.Path)
		}
	}
	var spec struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &spec); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, ops := range spec.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	if strings.Join(routes, "\n") != strings.Join(documented, "\n") {
		t.Fatalf("routes and document differ\nrouter:\n%s\n\ndocument:\n%s", strings.Join(routes, "\n"), strings.Join(documented, "\n"))
	}
}

// TestDocsPage: /docs is the vendored Redoc rendering /openapi.yaml, served
// from the binary (nothing from elsewhere), with an anchor per problem code;
// / redirects there. (TestDocsRenderInABrowser renders it for real.)
func TestDocsPage(t *testing.T) {
	db := storetest.MustOpen(t)
	r := NewRouter(Config{Tenants: tenants.NewService(tenants.Config{Control: db.Control}), Registry: prometheus.NewRegistry(), Logger: storetest.Logger()})
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	if w := get("/openapi.yaml"); w.Code != 200 || w.Header().Get("Content-Type") != "application/yaml" || !bytes.Equal(w.Body.Bytes(), openapiYAML) {
		t.Fatalf("openapi.yaml: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	w := get("/docs")
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("docs: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	for _, want := range []string{`<script src="/docs/redoc.standalone.js"></script>`, `Redoc.init("/openapi.yaml"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("docs page lacks %s", want)
		}
	}
	// Nothing is loaded from elsewhere: every src and href is local.
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		if !strings.HasPrefix(m[1], "/") && !strings.HasPrefix(m[1], "#") {
			t.Errorf("the docs page loads %s", m[1])
		}
	}
	if js := get("/docs/redoc.standalone.js"); js.Code != 200 || !bytes.Equal(js.Body.Bytes(), redocJS) || len(redocJS) < 500_000 {
		t.Fatalf("redoc bundle: %d, %d bytes", js.Code, js.Body.Len())
	}
	if w := get("/"); w.Code != http.StatusFound || w.Header().Get("Location") != "/docs" {
		t.Fatalf("GET /: %d %q", w.Code, w.Header().Get("Location"))
	}
	// Every problem code has its anchor: problem documents link there.
	var spec struct {
		Info struct {
			ProblemCodes map[string]string `yaml:"x-problem-codes"`
		} `yaml:"info"`
	}
	if err := yaml.Unmarshal(openapiYAML, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Info.ProblemCodes) < 20 {
		t.Fatalf("only %d problem codes described", len(spec.Info.ProblemCodes))
	}
	for code := range spec.Info.ProblemCodes {
		if !strings.Contains(body, `<tr id="problem-`+code+`"><td><code>`+code+`</code></td>`) {
			t.Errorf("problem code %s has no anchor", code)
		}
	}
}

func answer(status int, contentType, body string, header ...string) *http.Response {
	h := http.Header{"Content-Type": {contentType}, "X-Request-Id": {"req-1"}}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			h.Del(header[i])
			continue
		}
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: http.NoBody}
}

func problemJSON(status int, code string) string {
	return fmt.Sprintf(`{"type":"/docs#problem-%s","title":%q,"status":%d,"detail":"d","instance":"/v1/customers/x","code":%q,"requestId":"req-1"}`,
		code, http.StatusText(status), status, code)
}

// TestContractCheckerCatchesBreaks: the checker the integration tests rely
// on accepts what the contract allows and fails the test on anything else.

// recordingTB keeps the failures a checker reports instead of failing the
// test, so tests can assert that the checker does fail.
type recordingTB struct {
	testing.TB
	errs []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestContractCheckerCatchesBreaks(t *testing.T) {
	cc := newContractChecker(t)
	get := httptest.NewRequest("GET", "/v1/customers/0193a0c4-1111-7000-8000-000000000001", nil)
	get.Header.Set("Authorization", "Bearer x")
	const pj = "application/problem+json"
	responses := []struct {
		name string
		resp *http.Response
		body string
		ok   bool
	}{
		{"a customer", answer(200, "application/json; charset=utf-8", ""), validCustomerJSON, true},
		{"a not_found problem", answer(404, pj, ""), problemJSON(404, "not_found"), true},
		{"a problem with field errors", answer(404, pj, ""),
			strings.Replace(problemJSON(404, "not_found"), `}`, `,"errors":[{"field":"id","message":"m"}]}`, 1), true},
		{"a 401 with its challenge", answer(401, pj, "", "WWW-Authenticate", `Bearer realm="switchboard"`), problemJSON(401, "unauthorized"), true},
		{"a 429 with Retry-After", answer(429, pj, "", "Retry-After", "3"), problemJSON(429, "rate_limited"), true},
		{"a 500", answer(500, pj, ""), problemJSON(500, "internal_error"), true},

		{"missing keys", answer(200, "application/json", ""), `{"id":"0193a0c4-1111-7000-8000-000000000001"}`, false},
		{"wrong status enum", answer(200, "application/json", ""), strings.Replace(validCustomerJSON, `"ACTIVE"`, `"ALIVE"`, 1), false},
		{"extra key", answer(200, "application/json", ""), strings.Replace(validCustomerJSON, `{"id"`, `{"extra":1,"id"`, 1), false},
		{"time without milliseconds", answer(200, "application/json", ""), strings.Replace(validCustomerJSON, `2026-11-23T10:00:00.000Z`, `2026-11-23T10:00:00Z`, 1), false},
		{"label not a string", answer(200, "application/json", ""), strings.Replace(validCustomerJSON, `"label":"Acme"`, `"label":7`, 1), false},
		{"id not a uuid", answer(200, "application/json", ""), strings.Replace(validCustomerJSON, `"id":"0193a0c4-1111-7000-8000-000000000001"`, `"id":"c-1"`, 1), false},
		{"no X-Request-Id", answer(200, "application/json", "", "X-Request-Id", ""), validCustomerJSON, false},
		{"undocumented status", answer(418, pj, ""), problemJSON(418, "not_found"), false},
		{"a problem as plain JSON", answer(404, "application/json", ""), problemJSON(404, "not_found"), false},
		{"an unknown problem code", answer(404, pj, ""), problemJSON(404, "gone_fishing"), false},
		{"a problem without requestId", answer(404, pj, ""), strings.Replace(problemJSON(404, "not_found"), `,"requestId":"req-1"`, ``, 1), false},
		{"a 401 without its challenge", answer(401, pj, ""), problemJSON(401, "unauthorized"), false},
		{"a 429 without Retry-After", answer(429, pj, ""), problemJSON(429, "rate_limited"), false},
	}
	for _, tc := range responses {
		rec := &recordingTB{TB: t}
		cc.CheckResponse(rec, get, tc.resp, []byte(tc.body))
		if tc.ok && len(rec.errs) > 0 {
			t.Errorf("%s: refused: %s", tc.name, strings.Join(rec.errs, "; "))
		}
		if !tc.ok && len(rec.errs) == 0 {
			t.Errorf("%s: accepted", tc.name)
		}
	}

	created := answer(201, "application/json; charset=utf-8", "", "Location", "/v1/customers/0193a0c4-1111-7000-8000-000000000001")
	requests := []struct {
		name, body, auth, ctype string
		ok                      bool
	}{
		{"a registration", `{"space":"acme","industryId":"x","label":"Acme"}`, "Bearer k", "application/json", true},
		{"with partnerId", `{"space":"acme","industryId":"x","label":"Acme","partnerId":"p"}`, "Bearer k", "application/json", true},
		{"an unknown field", `{"space":"acme","industryId":"x","label":"Acme","colour":"red"}`, "Bearer k", "application/json", false},
		{"a missing label", `{"space":"acme","industryId":"x"}`, "Bearer k", "application/json", false},
		{"a bad space", `{"space":"-acme","industryId":"x","label":"Acme"}`, "Bearer k", "application/json", false},
		{"an empty label", `{"space":"acme","industryId":"x","label":""}`, "Bearer k", "application/json", false},
		{"no credentials", `{"space":"acme","industryId":"x","label":"Acme"}`, "", "application/json", false},
		{"not JSON", `space=acme`, "Bearer k", "text/plain", false},
	}
	for _, tc := range requests {
		req := httptest.NewRequest("POST", "/v1/customers", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := &recordingTB{TB: t}
		cc.Check(rec, req, []byte(tc.body), created, []byte(validCustomerJSON))
		if tc.ok && len(rec.errs) > 0 {
			t.Errorf("request %s: refused: %s", tc.name, strings.Join(rec.errs, "; "))
		}
		if !tc.ok && len(rec.errs) == 0 {
			t.Errorf("request %s: accepted", tc.name)
		}
	}

	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{``, true}, {`{}`, true}, {`{"expectedVersion":3}`, true}, {`{"expectedVersion":"any"}`, true},
		{`{"expectedVersion":0}`, false}, {`{"expectedVersion":"some"}`, false}, {`{"expectedVersion":1.5}`, false},
	} {
		req := httptest.NewRequest("POST", "/v1/customers/0193a0c4-1111-7000-8000-000000000001/activate", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer k")
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := &recordingTB{TB: t}
		cc.Check(rec, req, []byte(tc.body), answer(200, "application/json", ""), []byte(validCustomerJSON))
		if tc.ok != (len(rec.errs) == 0) {
			t.Errorf("activate %q: ok=%v, errors %v", tc.body, tc.ok, rec.errs)
		}
	}
}

// TestProblemCodesAreDocumented: the Problem schema's code enum, the codes
// the docs page describes and the codes the code can answer are one set.
func TestProblemCodesAreDocumented(t *testing.T) {
	var spec struct {
		Info struct {
			ProblemCodes map[string]string `yaml:"x-problem-codes"`
		} `yaml:"info"`
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `yaml:"enum"`
						} `yaml:"code"`
					} `yaml:"properties"`
				} `yaml:"Problem"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiYAML, &spec); err != nil {
		t.Fatal(err)
	}
	enum := spec.Components.Schemas.Problem.Properties.Code.Enum
	described := make([]string, 0, len(spec.Info.ProblemCodes))
	for c := range spec.Info.ProblemCodes {
		described = append(described, c)
	}
	sort.Strings(described)
	sorted := slices.Sorted(slices.Values(enum))
	if !slices.Equal(sorted, described) {
		t.Fatalf("Problem.code enum %v\ndescribed codes %v", sorted, described)
	}
	answered := []error{errPayloadTooLarge, errMediaType, errNoRoute, errNoMethod, errRateLimited, errNotReady, errMissingScope("contacts:read"),
		badRequest("", ""), invalidQuery("limit", "m"), idempotency.ErrInvalidKey, errors.New("anything else")}
	for _, s := range sentinels {
		answered = append(answered, s.err)
	}
	for _, err := range answered {
		p, _ := toProblem(err)
		if !slices.Contains(enum, p.Code) {
			t.Errorf("code %q (for %v) is not in the document", p.Code, err)
		}
	}
}

const validCustomerJSON = `{"id":"0193a0c4-1111-7000-8000-000000000001","partnerId":"0193a0c4-1111-7000-8000-000000000002",` +
	`"space":"acme","label":"Acme","industryId":"8f56c423-943d-5275-bb9f-9db8783c6dad","status":"ACTIVE","version":2,` +
	`"contactInfo":null,"twilio":{"accountSid":"AC0123456789abcdef0123456789abcdef","status":"active"},"retention":null,` +
	`"createdAt":"2026-11-23T10:00:00.000Z","updatedAt":"2026-11-23T10:00:00.000Z","activatedAt":"2026-11-23T10:00:00.000Z",` +
	`"deactivatedAt":null,"terminatedAt":null,"shreddedAt":null}`
