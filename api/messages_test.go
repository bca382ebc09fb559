package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/twilio"
)

// messagingCustomer is an ACTIVE customer with a number and a token.
type messagingCustomer struct {
	id, token, accountSID, number string
}

func (a *testAPI) messagingCustomer(t *testing.T, space string) messagingCustomer {
	t.Helper()
	id, tok := a.activeCustomer(t, a.key, space)
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/phone-numbers", key: a.key, body: `{"phoneNumber":"+15005550006"}`})
	if r.Status != 201 {
		t.Fatalf("buy number: %d %s", r.Status, r.Raw)
	}
	c := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key})
	tw := c.Body["twilio"].(map[string]any)
	return messagingCustomer{id: id, token: tok, accountSID: tw["accountSid"].(string), number: r.Body["phoneNumber"].(string)}
}

func newSID(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// hook posts a Twilio callback to path (with its query string), signed
// with token over the public URL unless sig is given.
func (a *testAPI) hook(t *testing.T, path string, params map[string]string, token, sig string) (int, string) {
	t.Helper()
	if sig == "" && token != "" {
		sig = twilio.Sign(token, a.srv.URL+path, params)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	hr, err := http.NewRequest("POST", a.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		hr.Header.Set("X-Twilio-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// The exchange is checked against the OpenAPI document like any other.
	check := hr.Clone(t.Context())
	check.Body = io.NopCloser(strings.NewReader(form.Encode()))
	if sig == "" {
		a.contract.CheckResponse(t, check, resp, raw) // no signature: breaks the request on purpose
	} else {
		a.contract.Check(t, check, []byte(form.Encode()), resp, raw)
	}
	if resp.StatusCode == 200 && (resp.Header.Get("Content-Type") != "text/xml; charset=utf-8" || !strings.Contains(string(raw), "<Response/>")) {
		t.Fatalf("webhook answer %q %s", resp.Header.Get("Content-Type"), raw)
	}
	return resp.StatusCode, string(raw)
}

func (a *testAPI) waitMessage(t *testing.T, tok, id string, done func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := a.do(t, req{method: "GET", path: "/v1/messages/" + id, key: tok})
		if r.Status != 200 {
			t.Fatalf("get message: %d %s", r.Status, r.Raw)
		}
		if done(r.Body) {
			return r.Body
		}
		if time.Now().After(deadline) {
			t.Fatalf("message never got there: %s", r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMessagingSandboxLoop(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: 300 * time.Millisecond})
	mc := a.messagingCustomer(t, "msg-loop")
	if mc.number == "+15005550006" || !strings.HasPrefix(mc.number, "+1") {
		t.Fatalf("bought %s", mc.number)
	}
	const phone = "+14155550101"
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: mc.token,
		body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"` + phone + `","firstName":"Ada","consents":[{"topic":"sms","value":"True"}]}]}`})
	if r.Status != 200 {
		t.Fatalf("contact: %d %s", r.Status, r.Raw)
	}
	cid := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)

	send := `{"contactId":"` + cid + `","body":"marker-body-7731"}`
	first := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: send, header: map[string]string{"Idempotency-Key": "k1"}})
	if first.Status != 202 || first.Body["status"] != "accepted" || first.Body["from"] != mc.number || first.Body["to"] != phone {
		t.Fatalf("send: %d %s", first.Status, first.Raw)
	}
	mid := first.Body["id"].(string)
	again := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: send, header: map[string]string{"Idempotency-Key": "k1"}})
	if again.Status != 202 || again.Body["id"] != mid || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.Status, again.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"other"}`,
		header: map[string]string{"Idempotency-Key": "k1"}}).problem(t, 422, "idempotency_key_reused")

	m := a.waitMessage(t, mc.token, mid, func(m map[string]any) bool { return m["status"] == "delivered" })
	if m["twilioSid"] == nil || m["sentAt"] == nil || m["deliveredAt"] == nil || m["body"] != "marker-body-7731" {
		t.Fatalf("delivered message %v", m)
	}
	if got := a.platform.Sandbox.SandboxMessages(mc.accountSID); len(got) != 1 {
		t.Fatalf("the sandbox holds %d messages, want exactly 1", len(got))
	}
	tl := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid + "/timeline", key: mc.token})
	if !strings.Contains(string(tl.Raw), `"type":"message.outbound"`) || !strings.Contains(string(tl.Raw), mid) {
		t.Fatalf("timeline %s", tl.Raw)
	}

	inbound := func(body string) string {
		params := a.received(mc.accountSID, phone, mc.number, body)
		sid := params["MessageSid"]
		if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", params, a.platform.Sandbox.AuthToken(mc.accountSID), ""); st != 200 {
			t.Fatalf("inbound: %d %s", st, raw)
		}
		// Twilio retries: the same callback again changes nothing.
		if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", params, a.platform.Sandbox.AuthToken(mc.accountSID), ""); st != 200 {
			t.Fatalf("inbound retry: %d %s", st, raw)
		}
		return sid
	}
	inbound("Hello there")
	in := a.do(t, req{method: "GET", path: "/v1/messages?direction=inbound", key: mc.token})
	items := in.Body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["contactId"] != cid || items[0].(map[string]any)["body"] != "Hello there" {
		t.Fatalf("inbound list %s", in.Raw)
	}

	inbound("  stop ")
	o := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape(phone), key: mc.token})
	if o.Status != 200 || o.Body["optedOut"] != true || o.Body["source"] != "sms:STOP" {
		t.Fatalf("opt-out %d %s", o.Status, o.Raw)
	}
	ct := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid, key: mc.token})
	if !strings.Contains(string(ct.Raw), `"topic":"sms","value":"False"`) || !strings.Contains(string(ct.Raw), `"source":"sms:STOP"`) {
		t.Fatalf("consent after STOP: %s", ct.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"are you there?"}`}).problem(t, 409, "recipient_opted_out")

	inbound("START")
	o = a.waitOptOut(t, mc.token, phone, false)
	if o.Body["optedOut"] != false || o.Body["source"] != "sms:START" {
		t.Fatalf("opt-in %s", o.Raw)
	}
	if r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"welcome back"}`}); r.Status != 202 {
		t.Fatalf("send after START: %d %s", r.Status, r.Raw)
	}

	// Redaction: here at once, at Twilio once the sender got to it.
	red := a.do(t, req{method: "DELETE", path: "/v1/messages/" + mid, key: mc.token})
	if red.Status != 200 || red.Body["body"] != nil || red.Body["redactedAt"] == nil {
		t.Fatalf("redact: %d %s", red.Status, red.Raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		gone := true
		for _, m := range a.platform.Sandbox.SandboxMessages(mc.accountSID) {
			if m.SID == red.Body["twilioSid"] {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Twilio's copy was never erased")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWebhookSignatures(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "msg-sig")
	other := a.messagingCustomer(t, "msg-sig-other")
	token := a.platform.Sandbox.AuthToken(mc.accountSID)
	params := func() map[string]string {
		sid := newSID("SM")
		return map[string]string{"AccountSid": mc.accountSID, "MessageSid": sid, "From": "+14155550102", "To": mc.number, "Body": "hi"}
	}
	inbound := "/v1/webhooks/twilio/inbound"
	count := func() int {
		r := a.do(t, req{method: "GET", path: "/v1/messages?direction=inbound", key: mc.token})
		return len(r.Body["items"].([]any))
	}
	cases := []struct {
		name   string
		params map[string]string
		token  string
		sig    string
		path   string
	}{
		{name: "missing", params: params(), path: inbound},
		{name: "wrong", params: params(), sig: "c2lnbmF0dXJl", path: inbound},
		{name: "master token", params: params(), token: testMasterToken, path: inbound},
		{name: "another customer's token", params: params(), token: a.platform.Sandbox.AuthToken(other.accountSID), path: inbound},
	}
	p := params()
	p["AccountSid"] = newSID("AC")
	cases = append(cases, struct {
		name   string
		params map[string]string
		token  string
		sig    string
		path   string
	}{name: "unknown AccountSid", params: p, token: token, path: inbound})
	for _, c := range cases {
		if st, raw := a.hook(t, c.path, c.params, c.token, c.sig); st != 403 {
			t.Fatalf("%s: %d %s", c.name, st, raw)
		}
	}
	// Signed by another customer's sub-account for its own AccountSid is
	// that customer's message, not this one's.
	if n := count(); n != 0 {
		t.Fatalf("forged callbacks stored %d messages", n)
	}
	// Signed over the URL without its query string: refused.
	status := "/v1/webhooks/twilio/status?mid=" + newSID("x")
	sp := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "MessageStatus": "delivered"}
	if st, _ := a.hook(t, status, sp, "", twilio.Sign(token, a.srv.URL+"/v1/webhooks/twilio/status", sp)); st != 403 {
		t.Fatalf("status signed without its query string: %d", st)
	}
	// Signed with its query string, for a message nobody knows: 200, nothing.
	if st, _ := a.hook(t, status, sp, token, ""); st != 200 {
		t.Fatalf("status of an unknown message: %d", st)
	}
	// MessagingServiceSid is one more signed parameter.
	ms := params()
	ms["MessagingServiceSid"] = newSID("MG")
	if st, raw := a.hook(t, inbound, ms, token, ""); st != 200 {
		t.Fatalf("with MessagingServiceSid: %d %s", st, raw)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d inbound messages, want 1", n)
	}
	// Not form-encoded: 415.
	r := a.do(t, req{method: "POST", path: inbound, body: `{}`, invalid: true})
	if r.Status != 415 {
		t.Fatalf("JSON webhook: %d %s", r.Status, r.Raw)
	}
	_ = fmt.Sprint
}
