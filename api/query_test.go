package api

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStrictQueryParameters: a parameter the route does not know is 400
// naming it and nothing happens (a typo must not hard-delete); one that
// does not parse is 422.
func TestStrictQueryParameters(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "strict")
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok,
		body: `{"mode":"Add","matchBy":"email","data":[{"email":"ann@example.com","firstName":"Ann"}]}`})
	id := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)

	for _, tc := range []struct {
		method, path, field string
		status              int
		code                string
	}{
		{"DELETE", "/v1/contacts/" + id + "?anonymise=true", "anonymise", 400, "malformed_request"},
		{"DELETE", "/v1/contacts/" + id + "?anonymize=yes", "anonymize", 422, "validation_failed"},
		{"DELETE", "/v1/contacts/" + id + "?anonymize=true&anonymize=false", "anonymize", 400, "malformed_request"},
		{"GET", "/v1/contacts?emial=ann@example.com", "emial", 400, "malformed_request"},
		{"GET", "/v1/contacts?limit=abc", "limit", 422, "validation_failed"},
		{"GET", "/v1/contacts/" + id + "?verbose=1", "verbose", 400, "malformed_request"},
		{"GET", "/v1/contacts/" + id + "/timeline?limit=0", "limit", 422, "validation_failed"},
	} {
		r := a.do(t, req{method: tc.method, path: tc.path, key: tok, invalid: true})
		r.problem(t, tc.status, tc.code)
		r.field(t, tc.field)
	}
	for _, tc := range []struct{ path, field string }{
		{"/v1/customers?statuss=ACTIVE", "statuss"},
		{"/v1/industries?page=2", "page"},
		{"/healthz?x=1", "x"},
	} {
		r := a.do(t, req{method: "GET", path: tc.path, key: a.key, invalid: true})
		r.problem(t, 400, "malformed_request")
		r.field(t, tc.field)
	}
	// Nothing happened: Ann is still there, as she was.
	got := a.do(t, req{method: "GET", path: "/v1/contacts/" + id, key: tok})
	if got.Status != 200 || got.Body["firstName"] != "Ann" || got.Body["anonymized"] != false {
		t.Fatalf("after the refused requests: %d %s", got.Status, got.Raw)
	}
}

// TestHeadAnswersLikeGet: HEAD on a GET route has GET's status and headers
// and no body; the Bearer scheme is matched case-insensitively.
func TestHeadAnswersLikeGet(t *testing.T) {
	a := newTestAPI(t)
	for _, path := range []string{"/v1/customers", "/v1/industries", "/healthz"} {
		hr, _ := http.NewRequest("HEAD", a.srv.URL+path, nil)
		hr.Header.Set("Authorization", "bearer "+a.key)
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || len(body) != 0 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("HEAD %s: %d %q %q", path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
}

// TestCharsetAndNullVersion: a body in another charset is 415; an explicit
// null expectedVersion is 400 (leave it out to mean "any").
func TestCharsetAndNullVersion(t *testing.T) {
	a := newTestAPI(t)
	id := a.register(t, "charset")["id"].(string)
	path := "/v1/customers/" + id + "/activate"
	r := a.do(t, req{method: "POST", path: path, key: a.key, body: `{}`, invalid: true,
		header: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}})
	r.problem(t, 415, "unsupported_media_type")
	r = a.do(t, req{method: "POST", path: path, key: a.key, body: `{"expectedVersion":null}`, invalid: true})
	r.problem(t, 400, "malformed_request")
	r.field(t, "expectedVersion")
	r = a.do(t, req{method: "POST", path: path, key: a.key, body: `{"expectedVersion":1}`,
		header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}})
	if r.Status != 200 || r.Body["version"] != float64(2) {
		t.Fatalf("activate with charset=UTF-8: %d %s", r.Status, r.Raw)
	}
}

// TestCursorsAreBoundToTheCaller: a cursor works for the caller and list it
// was issued for; forged, edited or another caller's cursor is 422.
func TestCursorsAreBoundToTheCaller(t *testing.T) {
	a := newTestAPI(t)
	for _, s := range []string{"cur-a", "cur-b", "cur-c"} {
		a.register(t, s)
	}
	first := a.do(t, req{method: "GET", path: "/v1/customers?limit=1", key: a.key})
	next, _ := first.Body["nextCursor"].(string)
	if first.Status != 200 || next == "" {
		t.Fatalf("first page: %d %s", first.Status, first.Raw)
	}
	if r := a.do(t, req{method: "GET", path: "/v1/customers?limit=1&cursor=" + next, key: a.key}); r.Status != 200 || len(r.Body["items"].([]any)) != 1 {
		t.Fatalf("next page: %d %s", r.Status, r.Raw)
	}
	edited := []byte(next)
	edited[0] ^= 1
	for name, tc := range map[string]struct{ key, cursor, path string }{
		"another partner": {a.other, next, "/v1/customers?limit=1&cursor="},
		"edited":          {a.key, string(edited), "/v1/customers?limit=1&cursor="},
		"forged":          {a.key, "MDE5M2EwYzQ", "/v1/customers?limit=1&cursor="},
		"another list":    {a.key, next, "/v1/customers/" + first.Body["items"].([]any)[0].(map[string]any)["id"].(string) + "/events?cursor="},
	} {
		r := a.do(t, req{method: "GET", path: tc.path + tc.cursor, key: tc.key})
		if r.Status != 422 || r.Body["code"] != "validation_failed" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
}
