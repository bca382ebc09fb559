package api

import (
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

const inboundPath = "/v1/webhooks/twilio/inbound"

// received makes the message a person at from texts to the number to of
// sub-account accountSID at Twilio (the double, or the sandbox), and
// returns the callback Twilio posts for it.
func (a *testAPI) received(accountSID, from, to, body string) map[string]string {
	if a.twilio != nil {
		return a.twilio.Receive(accountSID, from, to, body)
	}
	return a.platform.Sandbox.Inbound(accountSID, from, to, body)
}

// subToken is the auth token of sub-account accountSID, at the double or
// in the sandbox.
func (a *testAPI) subToken(t *testing.T, accountSID string) string {
	t.Helper()
	if a.twilio == nil {
		return a.platform.Sandbox.AuthToken(accountSID)
	}
	for _, acct := range a.twilio.Accounts() {
		if acct.SID == accountSID {
			return acct.AuthToken
		}
	}
	t.Fatalf("no sub-account %s at the double", accountSID)
	return ""
}

// optOut reads the opt-out of phone.
func (a *testAPI) optOut(t *testing.T, tok, phone string) response {
	t.Helper()
	r := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape(phone), key: tok})
	if r.Status != 200 {
		t.Fatalf("opt-out: %d %s", r.Status, r.Raw)
	}
	return r
}

// waitOptOut waits until the opt-out of phone is optedOut (an opt-in is
// applied once Twilio confirms its message, by the sender).
func (a *testAPI) waitOptOut(t *testing.T, tok, phone string, optedOut bool) response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.optOut(t, tok, phone)
		if r.Body["optedOut"] == optedOut {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("opt-out never became %v: %s", optedOut, r.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitConfirmations waits until no opt-in waits for Twilio's confirmation
// any more (the outbox holds no confirm job).
func (a *testAPI) waitConfirmations(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := a.db.Control.Collection("outbox").CountDocuments(t.Context(), bson.D{{Key: "kind", Value: "confirm"}})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d opt-ins still wait for Twilio", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postForm posts a form to path as it is given (repeated names included),
// with signature sig and the extra headers; it returns the answer.
func (a *testAPI) postForm(t *testing.T, path, form, sig string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	hr, err := http.NewRequest("POST", a.srv.URL+path, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		hr.Header.Set("X-Twilio-Signature", sig)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	check := hr.Clone(t.Context())
	check.Body = io.NopCloser(strings.NewReader(form))
	a.contract.CheckResponse(t, check, resp, raw)
	return resp.StatusCode, resp.Header, string(raw)
}

// hookRefused posts params signed with token (or with sig), as a form
// that breaks the contract on purpose: only the answer is checked.
func (a *testAPI) hookRefused(t *testing.T, path string, params map[string]string, token, sig string) (int, string) {
	t.Helper()
	if sig == "" {
		sig = twilio.Sign(token, a.srv.URL+path, params)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	st, _, raw := a.postForm(t, path, form.Encode(), sig, nil)
	return st, raw
}

func (a *testAPI) inboundCount(t *testing.T, tok string) int {
	t.Helper()
	r := a.do(t, req{method: "GET", path: "/v1/messages?direction=inbound", key: tok})
	return len(r.Body["items"].([]any))
}

// The attack of issue 18: Twilio's signature joins the sorted names and
// values with no separator, so a captured START re-cut with its MessageSid
// swallowing the next parameter (MessageSid=SM…NumMedia0) still verifies.
// It must be refused (403), store nothing and opt nobody back in.
func TestWebhookReplayWithShiftedBoundaryIsRefused(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{messaging: messagesRetry()})
	mc := a.messagingCustomer(t, "wh-recut")
	tok := a.subToken(t, mc.accountSID)
	const phone = "+14155550171"
	start := a.received(mc.accountSID, phone, mc.number, "START")
	if st, raw := a.hook(t, inboundPath, start, tok, ""); st != 200 {
		t.Fatalf("START: %d %s", st, raw)
	}
	a.waitOptOut(t, mc.token, phone, false)
	stop := a.received(mc.accountSID, phone, mc.number, "STOP")
	if st, raw := a.hook(t, inboundPath, stop, tok, ""); st != 200 {
		t.Fatalf("STOP: %d %s", st, raw)
	}
	a.waitOptOut(t, mc.token, phone, true)
	before := a.inboundCount(t, mc.token)

	// The captured START, re-cut: NumMedia=0 folded into MessageSid.
	sig := twilio.Sign(tok, a.srv.URL+inboundPath, start)
	recut := map[string]string{}
	for k, v := range start {
		recut[k] = v
	}
	delete(recut, "NumMedia")
	recut["MessageSid"] = start["MessageSid"] + "NumMedia" + start["NumMedia"]
	if twilio.Sign(tok, a.srv.URL+inboundPath, recut) != sig {
		t.Fatal("the re-cut form does not share the signature: the test proves nothing")
	}
	if st, raw := a.hookRefused(t, inboundPath, recut, "", sig); st != 403 {
		t.Fatalf("re-cut START: %d %s, want 403", st, raw)
	}
	// And with SmsSid gone too, so no check but the SID's shape is left.
	delete(recut, "SmsSid")
	delete(recut, "SmsMessageSid")
	if st, raw := a.hookRefused(t, inboundPath, recut, tok, ""); st != 403 {
		t.Fatalf("re-cut START without SmsSid: %d %s, want 403", st, raw)
	}
	a.waitConfirmations(t)
	if n := a.inboundCount(t, mc.token); n != before {
		t.Fatalf("%d inbound messages after the replays, want %d", n, before)
	}
	if o := a.optOut(t, mc.token, phone); o.Body["optedOut"] != true || o.Body["source"] != "sms:STOP" {
		t.Fatalf("opt-out after the replays: %s", o.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"still there?"}`}).problem(t, 409, "recipient_opted_out")
}

// Every SID of a callback must have Twilio's shape, SmsSid must be the
// MessageSid, and no parameter may repeat: else 403, even correctly signed.
func TestWebhookFormsTwilioCouldNotHaveSentAreRefused(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "wh-shapes")
	tok := a.subToken(t, mc.accountSID)
	valid := func() map[string]string { return a.received(mc.accountSID, "+14155550172", mc.number, "hello") }
	for _, tc := range []struct {
		name   string
		change func(map[string]string)
	}{
		{"MessageSid upper-case", func(p map[string]string) {
			p["MessageSid"] = strings.ToUpper(p["MessageSid"])
			p["SmsSid"] = p["MessageSid"]
		}},
		{"MessageSid too long", func(p map[string]string) { p["MessageSid"] += "0"; p["SmsSid"] = p["MessageSid"] }},
		{"MessageSid of another kind", func(p map[string]string) { p["MessageSid"] = "PN" + p["MessageSid"][2:]; p["SmsSid"] = p["MessageSid"] }},
		{"SmsSid another message's", func(p map[string]string) { p["SmsSid"] = newSID("SM") }},
		{"SmsMessageSid not a SID", func(p map[string]string) { p["SmsMessageSid"] = "x" }},
		{"AccountSid not a SID", func(p map[string]string) { p["AccountSid"] = strings.ToUpper(p["AccountSid"]) }},
		{"no AccountSid", func(p map[string]string) { delete(p, "AccountSid") }},
		{"MessagingServiceSid not a SID", func(p map[string]string) { p["MessagingServiceSid"] = "MG123" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.change(p)
			if st, raw := a.hookRefused(t, inboundPath, p, tok, ""); st != 403 {
				t.Fatalf("%d %s, want 403", st, raw)
			}
		})
	}
	t.Run("a repeated parameter", func(t *testing.T) {
		p := valid()
		form := url.Values{}
		for k, v := range p {
			form.Set(k, v)
		}
		form.Add("Body", "again")
		// Signed as twilio-go would take it (the first value).
		if st, _, raw := a.postForm(t, inboundPath, form.Encode(), twilio.Sign(tok, a.srv.URL+inboundPath, p), nil); st != 403 {
			t.Fatalf("%d %s, want 403", st, raw)
		}
	})
	if n := a.inboundCount(t, mc.token); n != 0 {
		t.Fatalf("refused callbacks stored %d messages", n)
	}
	if st, raw := a.hook(t, inboundPath, valid(), tok, ""); st != 200 {
		t.Fatalf("the valid callback: %d %s", st, raw)
	}
}

// An opt-in takes effect only once Twilio confirms the message: a signed
// START under a SID Twilio never gave is stored but opts nobody in; a real
// one does, even when Twilio cannot answer at first.
func TestWebhookOptInNeedsTwilioConfirmation(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{messaging: messagesRetry()})
	mc := a.messagingCustomer(t, "wh-confirm")
	tok := a.subToken(t, mc.accountSID)
	const phone = "+14155550173"
	if st, raw := a.hook(t, inboundPath, a.received(mc.accountSID, phone, mc.number, "STOP"), tok, ""); st != 200 {
		t.Fatalf("STOP: %d %s", st, raw)
	}
	a.waitOptOut(t, mc.token, phone, true)

	fetches := a.twilio.RouteCount(twiliotest.RouteMessageFetch)
	sid := newSID("SM")
	fake := map[string]string{"AccountSid": mc.accountSID, "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
		"From": phone, "To": mc.number, "Body": "START", "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01"}
	if st, raw := a.hook(t, inboundPath, fake, tok, ""); st != 200 {
		t.Fatalf("fabricated START: %d %s", st, raw)
	}
	a.waitConfirmations(t)
	if a.twilio.RouteCount(twiliotest.RouteMessageFetch) == fetches {
		t.Fatal("Twilio was never asked about the fabricated START")
	}
	if o := a.optOut(t, mc.token, phone); o.Body["optedOut"] != true || o.Body["source"] != "sms:STOP" {
		t.Fatalf("a fabricated START opted the number in: %s", o.Raw)
	}
	// The message itself is stored at once, keyword and all.
	in := a.do(t, req{method: "GET", path: "/v1/messages?direction=inbound", key: mc.token})
	if items := in.Body["items"].([]any); len(items) != 2 || items[0].(map[string]any)["keyword"] != "START" || items[0].(map[string]any)["twilioSid"] != sid {
		t.Fatalf("inbound messages: %s", in.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"hi"}`}).problem(t, 409, "recipient_opted_out")

	// A real START, while Twilio fails to answer twice: retried, applied.
	a.twilio.FailNextOn(twiliotest.RouteMessageFetch, 2, 503)
	if st, raw := a.hook(t, inboundPath, a.received(mc.accountSID, phone, mc.number, "start"), tok, ""); st != 200 {
		t.Fatalf("START: %d %s", st, raw)
	}
	if o := a.waitOptOut(t, mc.token, phone, false); o.Body["source"] != "sms:START" {
		t.Fatalf("opt-in: %s", o.Raw)
	}
	if r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"welcome back"}`}); r.Status != 202 {
		t.Fatalf("send after a confirmed START: %d %s", r.Status, r.Raw)
	}
}

// The sub-account's route is written at activation: a signed callback for
// an ACTIVE customer that has bought no number yet is answered 200.
func TestWebhookCallbackBeforeAnyNumber(t *testing.T) {
	a := newTestAPI(t)
	id, _ := a.activeCustomer(t, a.key, "wh-no-number")
	c := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key})
	sub := c.Body["twilio"].(map[string]any)["accountSid"].(string)
	p := map[string]string{"AccountSid": sub, "MessageSid": newSID("SM"), "MessageStatus": "delivered"}
	if st, raw := a.hook(t, "/v1/webhooks/twilio/status?mid="+newSID("x"), p, a.subToken(t, sub), ""); st != 200 {
		t.Fatalf("status callback before any number: %d %s, want 200", st, raw)
	}
}

// Refused callbacks are limited per client address (429 once spent);
// a callback whose signature verifies is served in the middle of the
// flood, from the same address.
func TestWebhookUnsignedFloodIsLimitedSignedIsServed(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, webhookLimit: 5, webhookClock: true})
	mc := a.messagingCustomer(t, "wh-flood")
	tok := a.subToken(t, mc.accountSID)
	bad := func(header map[string]string) (int, http.Header) {
		t.Helper()
		form := url.Values{"AccountSid": {mc.accountSID}, "MessageSid": {newSID("SM")}, "From": {"+14155550174"}, "To": {mc.number}, "Body": {"hi"}}
		st, h, _ := a.postForm(t, inboundPath, form.Encode(), "c2lnbmF0dXJl", header)
		return st, h
	}
	signed := func() {
		t.Helper()
		if st, raw := a.hook(t, inboundPath, a.received(mc.accountSID, "+14155550175", mc.number, "hello"), tok, ""); st != 200 {
			t.Fatalf("signed callback in the flood: %d %s, want 200", st, raw)
		}
	}
	for i := range 5 {
		if st, _ := bad(nil); st != 403 {
			t.Fatalf("refusal %d: %d, want 403", i+1, st)
		}
	}
	signed()
	for i := range 20 {
		st, h := bad(nil)
		if st != 429 || h.Get("Retry-After") == "" {
			t.Fatalf("refusal %d past the limit: %d (Retry-After %q), want 429", 6+i, st, h.Get("Retry-After"))
		}
		if i == 10 {
			signed()
		}
	}
	// X-Forwarded-For from an untrusted peer names nobody.
	if st, _ := bad(map[string]string{"X-Forwarded-For": "203.0.113.9"}); st != 429 {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", st)
	}
	signed()
	a.clock.Add(time.Second)
	if st, _ := bad(nil); st != 403 {
		t.Fatalf("after a second: %d, want 403 again", st)
	}
	if n := a.inboundCount(t, mc.token); n != 3 {
		t.Fatalf("%d inbound messages, want the 3 signed ones", n)
	}
}

// Behind a trusted proxy, X-Forwarded-For names the client: each is
// limited on its own.
func TestWebhookLimitBehindTrustedProxy(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, webhookLimit: 3, webhookClock: true,
		trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	mc := a.messagingCustomer(t, "wh-proxy")
	bad := func(client string) int {
		t.Helper()
		form := url.Values{"AccountSid": {mc.accountSID}, "MessageSid": {newSID("SM")}, "Body": {"hi"}}
		st, _, _ := a.postForm(t, inboundPath, form.Encode(), "c2lnbmF0dXJl", map[string]string{"X-Forwarded-For": client})
		return st
	}
	for range 3 {
		if st := bad("203.0.113.7"); st != 403 {
			t.Fatalf("%d, want 403", st)
		}
	}
	if st := bad("203.0.113.7"); st != 429 {
		t.Fatalf("the flooding client: %d, want 429", st)
	}
	if st := bad("198.51.100.1, 203.0.113.8"); st != 403 {
		t.Fatalf("another client behind the proxy: %d, want 403", st)
	}
}

// messagesRetry retries the sender's jobs (an unconfirmed opt-in among
// them) after 20 ms rather than a second.
func messagesRetry() messages.Config { return messages.Config{RetryBase: 20 * time.Millisecond} }
