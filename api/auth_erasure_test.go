package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/tokens"
)

// TestHeadNeedsWriteScope: every GET route is also a HEAD route, but
// scope() asks for the read scope only when the method is GET: a HEAD with
// a read-only token is 403, one with a write-only token is answered.
func TestHeadNeedsWriteScope(t *testing.T) {
	a := newTestAPI(t)
	id, readOnly := a.activeCustomer(t, a.key, "headscope", tokens.ContactsRead)
	writeOnly := a.mint(t, a.key, id, tokens.ContactsWrite)
	head := func(tok string) int {
		hr, _ := http.NewRequest("HEAD", a.srv.URL+"/v1/contacts", nil)
		hr.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	r, w := head(readOnly), head(writeOnly)
	if r != 200 || w != 403 {
		t.Errorf("HEAD /v1/contacts: read-only token %d (want 200), write-only token %d (want 403)", r, w)
	}
}

// TestAnonymizeBlockedIs500: a contact that holds the placeholder
// email of another makes that one's anonymization a 500 (errConflict is
// not mapped), for good.
func TestAnonymizeBlockedIs500(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "anonblock")
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"victim@example.com"}]}`})
	id := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: fmt.Sprintf(`{"mode":"Add","matchBy":"email","data":[{"email":"anonymized-%s@example.invalid"}]}`, id)})
	r = a.do(t, req{method: "DELETE", path: "/v1/contacts/" + id + "?anonymize=true", key: tok, invalid: true})
	if r.Status != 200 {
		t.Errorf("anonymize: %d %s", r.Status, r.Raw)
	}
}

// TestAuthFailuresConcurrent: the per-address allowance of failed
// authentications (100, then 1/s) is checked before the request and spent
// after it, so concurrent guesses all pass the check.
func TestAuthFailuresConcurrent(t *testing.T) {
	a := newTestAPI(t)
	var n401, n429 atomic.Int32
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			hr := httptest.NewRequest("GET", "/v1/industries", nil)
			hr.RemoteAddr = "203.0.113.7:1234"
			// The right prefix, a wrong secret: the key is looked up.
			hr.Header.Set("Authorization", "Bearer "+a.key[:len(a.key)-4]+fmt.Sprintf("%04d", i))
			w := httptest.NewRecorder()
			ready.Done()
			<-start
			a.router.ServeHTTP(w, hr)
			switch w.Code {
			case 401:
				n401.Add(1)
			case 429:
				n429.Add(1)
			}
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	t.Logf("200 concurrent bad keys: %d checked (401), %d refused (429)", n401.Load(), n429.Load())
	if n401.Load() > 100 {
		t.Errorf("%d failed authentications were checked from one address, allowance 100", n401.Load())
	}
}

// TestEmptyAnonymizeHardDeletes: ?anonymize= (or a bare ?anonymize)
// is neither true nor false, but it hard-deletes the contact instead of
// being refused (API.md: a value that does not parse is 422).
func TestEmptyAnonymizeHardDeletes(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "emptyanon")
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"ea@example.com"}]}`})
	id := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	r = a.do(t, req{method: "DELETE", path: "/v1/contacts/" + id + "?anonymize", key: tok, invalid: true})
	if r.Status == 204 {
		g := a.do(t, req{method: "GET", path: "/v1/contacts/" + id, key: tok, invalid: true})
		t.Errorf("DELETE ?anonymize (no value): %d, and the contact is gone (GET %d)", r.Status, g.Status)
	}
}

// TestFingerprintIsAnUnkeyedHash: the stored fingerprint of an
// Idempotency-Key record is a plain SHA-256 over method, path and the
// canonical body, so whoever reads the control database (or a backup) can
// confirm a guessed email offline, also after the customer is shredded
// (until Sweep, 48 h).
func TestFingerprintIsAnUnkeyedHash(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "fingerprint")
	body := `{"mode":"Add","matchBy":"email","data":[{"email":"secret.person@example.com"}]}`
	if r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: body, header: map[string]string{"Idempotency-Key": "fp-1"}}); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	for _, rec := range a.idempotencyRecords(t) {
		_, fp := rec.Lookup("body", "fingerprint").Binary()
		for _, guess := range []string{"someone@example.com", "secret.person@example.com"} {
			g := fmt.Sprintf(`{"data":[{"email":%q}],"matchBy":"email","mode":"Add"}`, guess)
			if string(idempotency.Fingerprint("POST", "/v1/contacts", []byte(g))) == string(fp) {
				t.Errorf("the stored fingerprint confirms the guess %q offline", guess)
			}
		}
	}
}
