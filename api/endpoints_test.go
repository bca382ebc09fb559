package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store"
)

// hookReceiver records what reaches it and answers 204.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{r.Header.Clone(), b})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the first request whose event type is typ.
func (h *hookReceiver) wait(t *testing.T, typ string) (hookRequest, map[string]any) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		for _, r := range h.reqs {
			var ev map[string]any
			if json.Unmarshal(r.body, &ev) == nil && ev["type"] == typ {
				h.mu.Unlock()
				return r, ev
			}
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event arrived", typ)
		}
	}
}

func verifies(r hookRequest, secret string) bool {
	wh, err := standardwebhooks.NewWebhook(secret)
	return err == nil && wh.Verify(r.body, r.header) == nil
}

// TestWebhookEndpointsOverHTTP: a partner's endpoint from create to
// delete, its test event delivered and signed, its deliveries log; a
// tenant's endpoint gets an inbound message; each is 404 to the other.
func TestWebhookEndpointsOverHTTP(t *testing.T) {
	t.Parallel()
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	rcv := newHookReceiver(t)
	url := rcv.srv.URL + "/hook"

	r := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: a.key,
		body: fmt.Sprintf(`{"url":%q,"events":["customer.activated","webhook.test"],"description":"ops"}`, url)})
	if r.Status != 201 || !strings.HasPrefix(fmt.Sprint(r.Body["secret"]), "whsec_") || r.Body["version"] != float64(1) || r.Body["enabled"] != true {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	id, secret := r.Body["id"].(string), r.Body["secret"].(string)
	if g := a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id, key: a.key}); g.Status != 200 || g.Body["secret"] != nil {
		t.Fatalf("get: %d %s", g.Status, g.Raw)
	}
	if l := a.do(t, req{method: "GET", path: "/v1/webhook-endpoints", key: a.key}); l.Status != 200 || len(l.Body["items"].([]any)) != 1 || strings.Contains(string(l.Raw), "whsec_") {
		t.Fatalf("list: %d %s", l.Status, l.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id, key: a.other}).problem(t, 404, "not_found")
	a.do(t, req{method: "PATCH", path: "/v1/webhook-endpoints/" + id, key: a.key, body: `{"expectedVersion":7,"description":"x"}`}).problem(t, 409, "version_conflict")
	if p := a.do(t, req{method: "PATCH", path: "/v1/webhook-endpoints/" + id, key: a.key, body: `{"expectedVersion":1,"events":["*"]}`}); p.Status != 200 || p.Body["version"] != float64(2) {
		t.Fatalf("patch: %d %s", p.Status, p.Raw)
	}

	// A lifecycle step of one of its customers arrives, signed.
	cid, tok := a.activeCustomer(t, a.key, "hooks-space")
	hr, ev := rcv.wait(t, "customer.activated")
	data := ev["data"].(map[string]any)
	if !verifies(hr, secret) || ev["customerId"] != cid || data["id"] != cid || data["status"] != "ACTIVE" || data["label"] != nil ||
		hr.header.Get("webhook-id") != ev["id"] || !strings.HasPrefix(hr.header.Get("User-Agent"), "Switchboard-Webhooks/") {
		t.Fatalf("customer.activated: %v %s", hr.header, hr.body)
	}

	// The test event, and the log.
	d := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints/" + id + "/test", key: a.key})
	if d.Status != 202 || d.Body["eventType"] != "webhook.test" || d.Body["status"] != "pending" {
		t.Fatalf("test: %d %s", d.Status, d.Raw)
	}
	rcv.wait(t, "webhook.test")
	did := d.Body["id"].(string)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l := a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id + "/deliveries?status=delivered&limit=1", key: a.key})
		items := l.Body["items"].([]any)
		if len(items) == 1 && items[0].(map[string]any)["id"] == did {
			if l.Body["nextCursor"] == nil {
				t.Fatalf("two deliveries, limit 1: no next page: %s", l.Raw)
			}
			next := a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id + "/deliveries?status=delivered&limit=1&cursor=" + l.Body["nextCursor"].(string), key: a.key})
			if it := next.Body["items"].([]any); len(it) != 1 || it[0].(map[string]any)["eventType"] != "customer.activated" {
				t.Fatalf("second page: %s", next.Raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: %s", l.Raw)
		}
	}
	a.do(t, req{method: "POST", path: "/v1/webhook-endpoints/" + id + "/deliveries/" + did + "/retry", key: a.key}).problem(t, 409, "invalid_transition")
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id + "/deliveries?status=sent", key: a.key, invalid: true}).problem(t, 422, "validation_failed")

	// A tenant app's endpoint: its own, and an inbound message reaches it.
	tr := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: tok,
		body: fmt.Sprintf(`{"url":%q,"events":["message.received"]}`, url)})
	if tr.Status != 201 {
		t.Fatalf("tenant create: %d %s", tr.Status, tr.Raw)
	}
	tid, tsecret := tr.Body["id"].(string), tr.Body["secret"].(string)
	// Sealed: neither the URL nor the secret is in the customer's data.
	for _, name := range store.CustomerCollections {
		docs, err := store.All[bson.Raw](t.Context(), a.db.Tenant(cid).Collection(name), store.Range{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			if bytes.Contains(d, []byte(rcv.srv.URL)) || bytes.Contains(d, []byte(tsecret[6:])) {
				t.Fatalf("%s holds the endpoint's URL or secret in the clear", name)
			}
		}
	}
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id, key: tok}).problem(t, 404, "not_found")
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + tid, key: a.key}).problem(t, 404, "not_found")
	buy := a.do(t, req{method: "POST", path: "/v1/customers/" + cid + "/phone-numbers", key: a.key, body: `{"phoneNumber":"+15005550006"}`})
	if buy.Status != 201 {
		t.Fatalf("buy: %d %s", buy.Status, buy.Raw)
	}
	_, ev = rcv.wait(t, "phone_number.purchased")
	if d := ev["data"].(map[string]any); d["phoneNumber"] == nil || d["id"] == nil || ev["customerId"] != cid {
		t.Fatalf("phone_number.purchased: %v", ev)
	}
	c := a.do(t, req{method: "GET", path: "/v1/customers/" + cid, key: a.key})
	acct := c.Body["twilio"].(map[string]any)["accountSid"].(string)
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", a.received(acct, "+14155550177", "+15005550006", "hello hooks"), a.platform.Sandbox.AuthToken(acct), ""); st != 200 {
		t.Fatalf("inbound: %d %s", st, raw)
	}
	hr, ev = rcv.wait(t, "message.received")
	if !verifies(hr, tsecret) || verifies(hr, secret) || ev["data"].(map[string]any)["body"] != "hello hooks" {
		t.Fatalf("message.received: %s", hr.body)
	}

	if r := a.do(t, req{method: "DELETE", path: "/v1/customers/" + cid + "/phone-numbers/" + buy.Body["id"].(string), key: a.key}); r.Status != 204 {
		t.Fatalf("release: %d %s", r.Status, r.Raw)
	}
	if _, ev := rcv.wait(t, "phone_number.released"); ev["data"].(map[string]any)["id"] != buy.Body["id"] {
		t.Fatalf("phone_number.released: %v", ev)
	}
	if r := a.do(t, req{method: "DELETE", path: "/v1/webhook-endpoints/" + id, key: a.key}); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints/" + id, key: a.key}).problem(t, 404, "not_found")
}

// TestWebhookEndpointRules: bad input is a problem naming the field and
// changes nothing; a token's scopes decide what it may subscribe to.
func TestWebhookEndpointRules(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	_, readOnly := a.activeCustomer(t, a.key, "rules-a", "webhooks:read")
	cid, noMessages := a.activeCustomer(t, a.key, "rules-b", "webhooks:read", "webhooks:write", "contacts:read")
	post := func(key, body string) response {
		return a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: key, body: body, invalid: true})
	}
	r := post(a.key, `{"url":"http://169.254.169.254/latest/meta-data","events":["*"]}`)
	r.problem(t, 422, "validation_failed")
	r.field(t, "url")
	r = post(a.key, `{"url":"https://8.8.8.8/h","events":["message.received"]}`)
	r.problem(t, 422, "validation_failed")
	r.field(t, "events[0]")
	r = post(noMessages, `{"url":"https://8.8.8.8/h","events":["customer.activated"]}`)
	r.field(t, "events[0]")
	post(noMessages, `{"url":"https://8.8.8.8/h","events":["opt_out.changed"]}`).problem(t, 403, "forbidden")
	post(readOnly, `{"url":"https://8.8.8.8/h","events":["webhook.test"]}`).problem(t, 403, "forbidden")
	_, contactsOnly := a.activeCustomer(t, a.key, "rules-c", "contacts:read")
	a.do(t, req{method: "GET", path: "/v1/webhook-endpoints", key: contactsOnly}).problem(t, 403, "forbidden")
	post(a.key, `{"url":"https://8.8.8.8/h"}`).field(t, "events")
	post(a.key, `{"url":"https://8.8.8.8/h","events":["*"],"secret":"x"}`).problem(t, 400, "malformed_request")
	if l := a.do(t, req{method: "GET", path: "/v1/webhook-endpoints", key: a.key}); len(l.Body["items"].([]any)) != 0 {
		t.Fatalf("a refused create left an endpoint: %s", l.Raw)
	}
	if r := post(noMessages, `{"url":"https://8.8.8.8/h","events":["contact.created"]}`); r.Status != 201 {
		t.Fatalf("contacts:read may subscribe to contact events: %d %s", r.Status, r.Raw)
	}
	_ = cid
}

// TestShredKeepsPartnerEventsDropsTenantOnes: shredding a customer drops
// its apps' endpoints and pending deliveries with its data; the partner
// still hears of the termination and the shred.
func TestShredKeepsPartnerEventsDropsTenantOnes(t *testing.T) {
	t.Parallel()
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	partnerRcv := newHookReceiver(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(failing.Close)
	if r := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: a.key, body: fmt.Sprintf(`{"url":%q,"events":["customer.terminated","customer.shredded"]}`, partnerRcv.srv.URL)}); r.Status != 201 {
		t.Fatalf("partner endpoint: %d %s", r.Status, r.Raw)
	}
	cid, tok := a.activeCustomer(t, a.key, "shred-hooks")
	if r := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: tok, body: fmt.Sprintf(`{"url":%q,"events":["contact.created"]}`, failing.URL)}); r.Status != 201 {
		t.Fatalf("tenant endpoint: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"gone@example.com"}]}`})
	// Its delivery is pending (the receiver keeps failing) when the shred comes.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := a.db.Tenant(cid).Collection("webhook_deliveries").Count(t.Context(), store.Range{})
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pending delivery")
		}
	}
	if r := a.do(t, req{method: "POST", path: "/v1/customers/" + cid + "/terminate", key: a.key, body: `{"retention":{"strategy":"NO_RETENTION"}}`}); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Raw)
	}
	_, term := partnerRcv.wait(t, "customer.terminated")
	_, shred := partnerRcv.wait(t, "customer.shredded")
	if term["customerId"] != cid || shred["data"].(map[string]any)["status"] != "SHREDDED" {
		t.Fatalf("partner events: %v %v", term, shred)
	}
	// An attempt in flight during the shred settles after it and takes
	// back what it wrote: wait for the due list first.
	waitNoDue(t, a, cid)
	if n, err := a.db.CountCustomerData(t.Context(), cid); err != nil || n != 0 {
		for _, name := range store.CustomerCollections {
			docs, _ := store.All[map[string]any](t.Context(), a.db.Tenant(cid).Collection(name), store.Range{})
			for _, d := range docs {
				t.Logf("%s: %v", name, d["_id"])
			}
		}
		t.Fatalf("%d documents of the shredded customer left (%v)", n, err)
	}
}

// waitNoDue waits until nothing of customer cid due now is in the due
// list.
func waitNoDue(t *testing.T, a *testAPI, cid string) {
	t.Helper()
	// (An attempt's lease, 15 s, is the longest an entry waits for work
	// already gone.)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var left int
		docs, err := store.All[map[string]any](t.Context(), store.Plain(a.db.Control.Collection("webhook_due")), store.Range{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			// Entries not due yet (an expiry in 30 days, an endpoint's
			// 5-day judgement: ids only) go when they come due and find
			// nothing; those due now must go now.
			key := d["_id"].(string)
			at, _ := store.TimeOfKey(key)
			if strings.Contains(key, "/c:"+cid+"/") && !at.After(time.Now()) {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d due entries of the shredded customer stay", left)
		}
	}
}
