package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// contractChecker validates requests and responses against openapi.yaml.
type contractChecker struct {
	v validator.Validator
}

func newContractChecker(t testing.TB) *contractChecker {
	t.Helper()
	doc, err := libopenapi.NewDocument(openapiYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("openapi.yaml: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("openapi.yaml is not valid OpenAPI 3.1: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	return &contractChecker{v: v}
}

// Check fails the test when the request or the response breaks the contract.
func (cc *contractChecker) Check(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	if ok, errs := cc.v.ValidateHttpRequestSync(r); !ok {
		for _, e := range errs {
			t.Errorf("request %s %s breaks the contract: %s: %s", req.Method, req.URL.Path, e.Message, e.Reason)
		}
	}
	cc.CheckResponse(t, req, resp, respBody)
}

// CheckResponse fails the test when the response breaks the contract; for
// requests that break it on purpose.
func (cc *contractChecker) CheckResponse(t testing.TB, req *http.Request, resp *http.Response, respBody []byte) {
	t.Helper()
	rs := *resp
	rs.Body = io.NopCloser(bytes.NewReader(respBody))
	r := req.Clone(req.Context())
	r.Body = http.NoBody
	if ok, errs := cc.v.ValidateHttpResponse(r, &rs); !ok {
		for _, e := range errs {
			t.Errorf("answer %d to %s %s breaks the contract: %s: %s\n%s", resp.StatusCode, req.Method, req.URL.Path, e.Message, e.Reason, respBody)
		}
	}
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
	for _, rt := range r.Routes() {
		routes = append(routes, rt.Method+" "+ginParam.ReplaceAllString(rt.Path, "{$1}"))
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

func TestDocsPage(t *testing.T) {
	db := storetest.MustOpen(t)
	r := NewRouter(Config{Tenants: tenants.NewService(tenants.Config{Control: db.Control}), Registry: prometheus.NewRegistry(), Logger: storetest.Logger()})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/docs", nil))
	body := w.Body.String()
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("docs: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	for _, want := range []string{"/v1/customers/{id}/terminate", "/v1/industries", `id="problem-version_conflict"`,
		`id="problem-upstream_unavailable"`, `id="schema-Customer"`, "/v1/contacts/{id}/timeline",
		"Bearer &lt;tenant app JWT&gt;", "Bearer &lt;partner API key&gt;", "no authentication"} {
		if !strings.Contains(body, want) {
			t.Errorf("docs page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "https://") {
		t.Error("docs page loads something from outside the binary")
	}
	// Every problem code the code can answer is documented.
	for _, s := range sentinels {
		if !strings.Contains(body, `id="problem-`+s.code+`"`) {
			t.Errorf("problem code %s is not documented", s.code)
		}
	}
}

// TestContractCheckerCatchesBreaks: the checker the integration tests rely
// on does reject an answer that breaks the document.
func TestContractCheckerCatchesBreaks(t *testing.T) {
	cc := newContractChecker(t)
	req := httptest.NewRequest("GET", "/v1/customers/abc", nil)
	req.Header.Set("Authorization", "Bearer x")
	for name, body := range map[string]string{
		"missing keys":  `{"id":"0193a0c4-1111-7000-8000-000000000001"}`,
		"wrong status":  strings.Replace(validCustomerJSON, `"ACTIVE"`, `"ALIVE"`, 1),
		"extra key":     strings.Replace(validCustomerJSON, `{"id"`, `{"extra":1,"id"`, 1),
		"time format":   strings.Replace(validCustomerJSON, `2026-11-23T10:00:00.000Z`, `2026-11-23T10:00:00Z`, 1),
		"label numeric": strings.Replace(validCustomerJSON, `"label":"Acme"`, `"label":7`, 1),
	} {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}},
			Body: io.NopCloser(strings.NewReader(body))}
		if ok, _ := cc.v.ValidateHttpResponse(req, resp); ok {
			t.Errorf("%s: the checker accepted a broken answer", name)
		}
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r"}},
		Body: io.NopCloser(strings.NewReader(validCustomerJSON))}
	if ok, errs := cc.v.ValidateHttpResponse(req, resp); !ok {
		t.Fatalf("the checker refused a valid answer: %v", errs[0].Reason)
	}
}

const validCustomerJSON = `{"id":"0193a0c4-1111-7000-8000-000000000001","partnerId":"0193a0c4-1111-7000-8000-000000000002",` +
	`"space":"acme","label":"Acme","industryId":"8f56c423-943d-5275-bb9f-9db8783c6dad","status":"ACTIVE","version":2,` +
	`"contactInfo":null,"twilio":{"accountSid":"AC0123456789abcdef0123456789abcdef","status":"active"},"retention":null,` +
	`"createdAt":"2026-11-23T10:00:00.000Z","updatedAt":"2026-11-23T10:00:00.000Z","activatedAt":"2026-11-23T10:00:00.000Z",` +
	`"deactivatedAt":null,"terminatedAt":null,"shreddedAt":null}`
