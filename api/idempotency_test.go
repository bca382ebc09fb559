package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/store/storetest"
)

// idempotencyRecords returns every stored idempotency record, raw.
func (a *testAPI) idempotencyRecords(t *testing.T) []bson.Raw {
	t.Helper()
	cur, err := a.db.Control.Collection("idempotency").Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	if err := cur.All(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIdempotentReplayAfterShreddingIsGone(t *testing.T) {
	a := newTestAPI(t)
	body := fmt.Sprintf(`{"space":"gone-soon","industryId":%q,"label":"Private Label 7731"}`, testIndustry)
	hdr := map[string]string{"Idempotency-Key": "reg-shred"}
	first := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr})
	if first.Status != 201 {
		t.Fatalf("register: %d %s", first.Status, first.Raw)
	}
	recs := a.idempotencyRecords(t)
	if len(recs) != 1 {
		t.Fatalf("%d idempotency records, want 1", len(recs))
	}
	if bytes.Contains(recs[0], []byte("Private Label 7731")) {
		t.Fatal("the stored answer holds the label in plaintext")
	}
	if owner := recs[0].Lookup("body", "owner").StringValue(); owner != first.Body["id"] {
		t.Fatalf("record owner %q, want the new customer %v", owner, first.Body["id"])
	}

	id := first.Body["id"].(string)
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
		body: `{"expectedVersion":1,"retention":{"strategy":"NO_RETENTION"}}`})
	if r.Status != 200 || r.Body["status"] != "SHREDDED" {
		t.Fatalf("terminate: %d %s", r.Status, r.Raw)
	}
	// The first answer held the label: once the key is destroyed it can
	// never be replayed again.
	again := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr})
	again.problem(t, 410, "data_shredded")
	if again.Header.Get("Idempotent-Replayed") != "" || bytes.Contains(again.Raw, []byte("Private Label")) {
		t.Fatalf("a shredded answer was replayed: %s", again.Raw)
	}
}

func TestFailedRequestReleasesItsKey(t *testing.T) {
	a := newTestAPI(t)
	hdr := map[string]string{"Idempotency-Key": "reg-fail"}
	bad := `{"space":"fails","industryId":"00000000-0000-0000-0000-000000000000","label":"L"}`
	for range 2 {
		r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: bad, header: hdr})
		r.problem(t, 422, "validation_failed")
		r.field(t, "industryId")
		if r.Header.Get("Idempotent-Replayed") != "" {
			t.Fatal("a failure was replayed")
		}
	}
	// Each failure released its generation (generations are never deleted
	// one by one: see store.Chain).
	for _, rec := range a.idempotencyRecords(t) {
		if st := rec.Lookup("body", "state").StringValue(); st != "released" {
			t.Fatalf("record in state %q after failures, want released", st)
		}
	}
	// The key is free: another body with it runs (no idempotency_key_reused).
	good := fmt.Sprintf(`{"space":"fails","industryId":%q,"label":"L"}`, testIndustry)
	r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: good, header: hdr})
	if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("after release: %d %s", r.Status, r.Raw)
	}
	// A conflict is a failure too: the retry runs again and gets it again.
	dup := fmt.Sprintf(`{"space":"fails","industryId":%q,"label":"Other"}`, testIndustry)
	for range 2 {
		a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: dup,
			header: map[string]string{"Idempotency-Key": "reg-dup"}}).problem(t, 409, "space_taken")
	}
}

func TestIdempotencyKeyInProgress(t *testing.T) {
	a := newTestAPI(t)
	me := a.register(t, "whoami")["partnerId"].(string)
	body := fmt.Sprintf(`{"space":"slow","industryId":%q,"label":"Slow"}`, testIndustry)
	// Another instance of this request holds the key right now.
	store := idempotency.NewStore(a.db.Control.Collection("idempotency"), a.db.Control.Collection("idempotency_due"), idempotency.WithKey(a.master.DeriveKey("idempotency fingerprints")))
	claim, _, err := store.Begin(t.Context(), "partner:"+me, "reg-slow", idempotency.Fingerprint("POST", "/v1/customers", []byte(body)))
	if err != nil || claim == nil {
		t.Fatalf("claim: %v", err)
	}
	hdr := map[string]string{"Idempotency-Key": "reg-slow"}
	a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr}).problem(t, 409, "idempotency_in_progress")
	// The same key with another body is refused even while it runs.
	other := fmt.Sprintf(`{"space":"fast","industryId":%q,"label":"Fast"}`, testIndustry)
	a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: other, header: hdr}).problem(t, 422, "idempotency_key_reused")
	// Another partner's same key is not blocked.
	if r := a.do(t, req{method: "POST", path: "/v1/customers", key: a.other, body: body, header: hdr}); r.Status != 201 {
		t.Fatalf("other partner: %d %s", r.Status, r.Raw)
	}
	if err := store.Release(t.Context(), claim); err != nil {
		t.Fatal(err)
	}
	a.do(t, req{method: "POST", path: "/v1/customers", key: a.key, body: body, header: hdr}).problem(t, 409, "space_taken")
}

// middlewareHarness runs the idempotent middleware on a route of its own,
// over the real store and service, to reach outcomes the partner routes
// cannot produce on demand (panics, answers without an owner).
type middlewareHarness struct {
	srv   *httptest.Server
	owner string

	mu   sync.Mutex // the handler runs on the server's goroutines
	runs int
	seen string // the last request body as the handler read it
}

func (h *middlewareHarness) state() (runs int, seen string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs, h.seen
}

func newMiddlewareHarness(t *testing.T) (*middlewareHarness, *testAPI) {
	a := newTestAPI(t)
	h := &middlewareHarness{owner: a.register(t, "owner")["id"].(string)}
	r := gin.New()
	r.Use(withRequestID(storetest.Logger()), recoverProblem(), limitBody())
	store := idempotency.NewStore(a.db.Control.Collection("idempotency"), a.db.Control.Collection("idempotency_due"), idempotency.WithKey(a.master.DeriveKey("idempotency fingerprints")))
	r.POST("/things/:id", idempotent(store, a.svc, func(*gin.Context) string { return "test" }), func(c *gin.Context) {
		b, err := io.ReadAll(c.Request.Body)
		if err != nil {
			writeProblem(c, err)
			return
		}
		h.mu.Lock()
		h.runs++
		run := map[string]int{"run": h.runs}
		h.seen = string(b)
		h.mu.Unlock()
		switch c.Query("outcome") {
		case "panic":
			panic("handler bug")
		case "anonymous": // succeeds but names no owner
			reply(c, http.StatusOK, run)
		case "created":
			setIdempotencyOwner(c, h.owner)
			c.Header("Location", "/things/"+c.Param("id"))
			c.Header("X-Other", "not kept")
			reply(c, http.StatusCreated, run)
		default:
			setIdempotencyOwner(c, h.owner)
			reply(c, http.StatusOK, run)
		}
	})
	h.srv = httptest.NewServer(r)
	t.Cleanup(h.srv.Close)
	return h, a
}

// post sends body with an Idempotency-Key, or without one when key is "".
func (h *middlewareHarness) post(t *testing.T, path, key, body string) (*http.Response, string) {
	t.Helper()
	var hdr []string
	if key != "" {
		hdr = []string{key}
	}
	return h.send(t, path, hdr, body)
}

// postKey sends key as the Idempotency-Key, even an empty one.
func (h *middlewareHarness) postKey(t *testing.T, path, key, body string) (*http.Response, string) {
	t.Helper()
	return h.send(t, path, []string{key}, body)
}

func (h *middlewareHarness) send(t *testing.T, path string, key []string, body string) (*http.Response, string) {
	t.Helper()
	hr, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if key != nil {
		hr.Header["Idempotency-Key"] = key
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestIdempotentMiddleware(t *testing.T) {
	h, a := newMiddlewareHarness(t)

	t.Run("without the header it does nothing", func(t *testing.T) {
		for i := range 2 {
			resp, body := h.post(t, "/things/a", "", `{"n":1}`)
			runs, _ := h.state()
			if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "" || body != fmt.Sprintf("{\"run\":%d}\n", runs) {
				t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
			}
		}
		if n := len(a.idempotencyRecords(t)); n != 0 {
			t.Fatalf("%d records without a key", n)
		}
	})

	t.Run("the handler reads the whole body and the replay is the first answer", func(t *testing.T) {
		before, _ := h.state()
		body := `{"text":"` + strings.Repeat("x", 100_000) + `"}`
		first, b1 := h.post(t, "/things/b?outcome=created", "k-created", body)
		if _, seen := h.state(); first.StatusCode != 201 || seen != body {
			t.Fatalf("first: %d, handler read %d bytes of %d", first.StatusCode, len(seen), len(body))
		}
		again, b2 := h.post(t, "/things/b?outcome=created", "k-created", body)
		if runs, _ := h.state(); runs != before+1 {
			t.Fatalf("the handler ran %d times, want once", runs-before)
		}
		if again.StatusCode != 201 || b2 != b1 || again.Header.Get("Idempotent-Replayed") != "true" ||
			again.Header.Get("Location") != "/things/b" || again.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("replay: %d %q %v", again.StatusCode, b2, again.Header)
		}
		if again.Header.Get("X-Other") != "" {
			t.Fatal("the replay carries a header that was not kept")
		}
		if again.Header.Get("X-Request-Id") == "" || again.Header.Get("X-Request-Id") == first.Header.Get("X-Request-Id") {
			t.Fatal("the replay does not carry its own request id")
		}
		// The same key and body on another resource is another request.
		resp, _ := h.post(t, "/things/c?outcome=created", "k-created", body)
		if resp.StatusCode != 422 {
			t.Fatalf("same key on another path: %d, want 422", resp.StatusCode)
		}
	})

	t.Run("a panic releases the key", func(t *testing.T) {
		before, _ := h.state()
		resp, body := h.post(t, "/things/d?outcome=panic", "k-panic", `{}`)
		if resp.StatusCode != 500 || !strings.Contains(body, `"code":"internal_error"`) {
			t.Fatalf("panic: %d %s", resp.StatusCode, body)
		}
		resp, body = h.post(t, "/things/d", "k-panic", `{}`)
		if runs, _ := h.state(); resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "" || runs != before+2 {
			t.Fatalf("retry after a panic: %d %s, %d runs", resp.StatusCode, body, runs-before)
		}
	})

	t.Run("an answer without an owner is not kept", func(t *testing.T) {
		before, _ := h.state()
		for range 2 {
			resp, _ := h.post(t, "/things/e?outcome=anonymous", "k-anon", `{}`)
			if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("anonymous: %d replayed=%q", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
			}
		}
		if runs, _ := h.state(); runs != before+2 {
			t.Fatalf("the handler ran %d times, want 2", runs-before)
		}
	})

	t.Run("an invalid key is refused before the handler runs", func(t *testing.T) {
		before, _ := h.state()
		for _, k := range []string{"", strings.Repeat("k", 256), "caf\xc3\xa9"} {
			resp, body := h.postKey(t, "/things/f", k, `{}`)
			if resp.StatusCode != 422 || !strings.Contains(body, `"field":"Idempotency-Key"`) {
				t.Fatalf("key %q: %d %s", k, resp.StatusCode, body)
			}
		}
		if runs, _ := h.state(); runs != before {
			t.Fatal("the handler ran with an invalid key")
		}
	})
}

// TestReplayDoesNotUndoErasure: a replayed external event of a contact
// anonymized since comes back with its texts erased; of one deleted since,
// 404.
func TestReplayDoesNotUndoErasure(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "replayerase")
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"ann@example.com"},{"email":"bob@example.com"}]}`})
	ann := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	bob := r.Body["results"].([]any)[1].(map[string]any)["id"].(string)
	event := `{"type":"call","message":"Called about a private matter","initiatedBy":"Agent Smith"}`
	hdr := func(id string) map[string]string { return map[string]string{"Idempotency-Key": "call-" + id} }
	for _, id := range []string{ann, bob} {
		if r := a.do(t, req{method: "POST", path: "/v1/contacts/" + id + "/events", key: tok, body: event, header: hdr(id)}); r.Status != 201 {
			t.Fatalf("event: %d %s", r.Status, r.Raw)
		}
	}
	a.do(t, req{method: "DELETE", path: "/v1/contacts/" + ann + "?anonymize=true", key: tok})
	r = a.do(t, req{method: "POST", path: "/v1/contacts/" + ann + "/events", key: tok, body: event, header: hdr(ann)})
	if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" || r.Body["message"] != nil || r.Body["initiatedBy"] != nil ||
		bytes.Contains(r.Raw, []byte("private matter")) {
		t.Fatalf("replay after anonymize: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "DELETE", path: "/v1/contacts/" + bob, key: tok})
	a.do(t, req{method: "POST", path: "/v1/contacts/" + bob + "/events", key: tok, body: event, header: hdr(bob)}).problem(t, 404, "not_found")
}
