package api

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects log lines written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNumbersOverHTTP(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	id, _ := a.activeCustomer(t, a.key, "numbers")
	path := "/v1/customers/" + id + "/phone-numbers"
	buy := func(body string) response { return a.do(t, req{method: "POST", path: path, key: a.key, body: body}) }
	// bad breaks the documented schema on purpose: only the answer is checked.
	bad := func(body string) response {
		return a.do(t, req{method: "POST", path: path, key: a.key, body: body, invalid: true})
	}
	buy(`{"phoneNumber":"+15005550000"}`).problem(t, 409, "number_unavailable")
	r := buy(`{"phoneNumber":"+15005550001"}`)
	r.problem(t, 422, "validation_failed")
	r.field(t, "phoneNumber")
	bad(`{"phoneNumber":"555-0100"}`).field(t, "phoneNumber")
	bad(`{}`).field(t, "phoneNumber")
	bad(`{"phoneNumber":"+15005550006","country":"US"}`).field(t, "phoneNumber")
	bad(`{"country":"Narnia"}`).field(t, "country")
	first := buy(`{"phoneNumber":"+15005550006"}`)
	second := buy(`{"country":"US","areaCode":"415"}`)
	if first.Status != 201 || second.Status != 201 || !strings.HasPrefix(second.Body["phoneNumber"].(string), "+1415") ||
		first.Header.Get("Location") != path+"/"+first.Body["id"].(string) {
		t.Fatalf("buy: %d %s / %d %s", first.Status, first.Raw, second.Status, second.Raw)
	}
	// With an Idempotency-Key a retry buys nothing more.
	k := map[string]string{"Idempotency-Key": "buy-1"}
	one := a.do(t, req{method: "POST", path: path, key: a.key, body: `{"country":"US"}`, header: k})
	two := a.do(t, req{method: "POST", path: path, key: a.key, body: `{"country":"US"}`, header: k})
	if one.Status != 201 || two.Body["id"] != one.Body["id"] || two.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("idempotent buy: %s / %s", one.Raw, two.Raw)
	}
	list := a.do(t, req{method: "GET", path: path, key: a.key})
	if items := list.Body["items"].([]any); len(items) != 3 || items[0].(map[string]any)["id"] != first.Body["id"] {
		t.Fatalf("list: %s", list.Raw)
	}
	a.do(t, req{method: "GET", path: path, key: a.other}).problem(t, 404, "not_found")
	a.do(t, req{method: "DELETE", path: path + "/" + first.Body["id"].(string), key: a.other}).problem(t, 404, "not_found")
	if r := a.do(t, req{method: "DELETE", path: path + "/" + first.Body["id"].(string), key: a.key}); r.Status != 204 {
		t.Fatalf("release: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "DELETE", path: path + "/" + first.Body["id"].(string), key: a.key}).problem(t, 404, "not_found")
	if items := a.do(t, req{method: "GET", path: path, key: a.key}).Body["items"].([]any); len(items) != 2 {
		t.Fatalf("%d numbers after a release", len(items))
	}
	// Not ACTIVE: no purchase; terminated: nothing listed.
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key, body: `{}`})
	buy(`{"country":"US"}`).problem(t, 409, "customer_not_active")
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key, body: `{"retention":{"strategy":"INDEFINITE"}}`})
	if items := a.do(t, req{method: "GET", path: path, key: a.key}).Body["items"].([]any); len(items) != 0 {
		t.Fatalf("a terminated customer lists %d numbers", len(items))
	}
}

func TestSendRules(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	id, tok := a.activeCustomer(t, a.key, "send-rules")
	send := func(body string) response {
		return a.do(t, req{method: "POST", path: "/v1/messages", key: tok, body: body})
	}
	send(`{"to":"+14155550100","body":"hi"}`).problem(t, 409, "no_sender_number")
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/phone-numbers", key: a.key, body: `{"phoneNumber":"+15005550006"}`})
	for body, field := range map[string]string{
		`{"to":"+14155550100","contactId":"x","body":"hi"}`: "to",
		`{"body":"hi"}`:                   "to",
		`{"to":"4155550100","body":"hi"}`: "to",
		`{"to":"+14155550100"}`:           "body",
		`{"to":"+14155550100","body":""}`: "body",
		`{"to":"+14155550100","body":"` + strings.Repeat("x", 1601) + `"}`: "body",
		`{"to":"+14155550100","mediaUrls":["http://example.com/a.png"]}`:   "mediaUrls[0]",
		`{"to":"+14155550100","mediaUrls":[]}`:                             "mediaUrls",
		`{"to":"+14155550100","body":"hi","from":"+14155550199"}`:          "from",
		`{"contactId":"01938d5e-0000-7000-8000-000000000000","body":"hi"}`: "contactId",
	} {
		r := a.do(t, req{method: "POST", path: "/v1/messages", key: tok, body: body, invalid: true})
		r.problem(t, 422, "validation_failed")
		r.field(t, field)
	}
	r := a.do(t, req{method: "POST", path: "/v1/messages", key: tok, body: `{"to":"+14155550100","body":"hi","extra":1}`, invalid: true})
	if r.Status != 400 {
		t.Fatalf("unknown member: %d", r.Status)
	}
	// A contact with no phone and no sms channel cannot be sent to.
	c := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"nophone@example.com"}]}`})
	cid := c.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	send(`{"contactId":"`+cid+`","body":"hi"}`).field(t, "contactId")
	// Media alone is a message.
	if r := send(`{"to":"+14155550100","mediaUrls":["https://example.com/a.png"]}`); r.Status != 202 || len(r.Body["mediaUrls"].([]any)) != 1 {
		t.Fatalf("media only: %d %s", r.Status, r.Raw)
	}
	// Scopes: read cannot send, contacts cannot read messages.
	readOnly := a.mint(t, a.key, id, "messages:read")
	a.do(t, req{method: "POST", path: "/v1/messages", key: readOnly, body: `{"to":"+14155550100","body":"hi"}`}).problem(t, 403, "forbidden")
	contactsOnly := a.mint(t, a.key, id, "contacts:read", "contacts:write")
	a.do(t, req{method: "GET", path: "/v1/messages", key: contactsOnly}).problem(t, 403, "forbidden")
	a.do(t, req{method: "GET", path: "/v1/messages?direction=sideways", key: tok, invalid: true}).field(t, "direction")
	a.do(t, req{method: "GET", path: "/v1/messages?status=lost", key: tok, invalid: true}).field(t, "status")
	if r := a.do(t, req{method: "GET", path: "/v1/messages?sort=asc", key: tok, invalid: true}); r.Status != 400 {
		t.Fatalf("unknown parameter: %d", r.Status)
	}
}

func TestSandboxMagicRecipients(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "magic")
	for to, code := range map[string]float64{"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408, "+15005550004": 21610, "+15005550009": 21614} {
		r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + to + `","body":"magic"}`})
		if r.Status != 202 {
			t.Fatalf("send to %s: %d %s", to, r.Status, r.Raw)
		}
		m := a.waitMessage(t, mc.token, r.Body["id"].(string), func(m map[string]any) bool { return m["status"] == "failed" })
		if m["errorCode"] != code || m["errorMessage"] == nil {
			t.Fatalf("%s: %v", to, m)
		}
	}
	o := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape("+15005550004"), key: mc.token})
	if o.Body["optedOut"] != true || o.Body["source"] != "twilio:21610" {
		t.Fatalf("21610 not recorded: %s", o.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"+15005550004","body":"again"}`}).problem(t, 409, "recipient_opted_out")
}

func TestOptOutsOverHTTP(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "optouts")
	c := a.do(t, req{method: "POST", path: "/v1/contacts", key: mc.token, body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"+14155550123","consents":[{"topic":"sms","value":"AwaitingConfirmation"}]}]}`})
	cid := c.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	never := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape("+1 415 555 0199"), key: mc.token})
	if never.Status != 200 || never.Body["optedOut"] != false || never.Body["source"] != nil || never.Body["phone"] != "+14155550199" {
		t.Fatalf("never seen: %s", never.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/opt-outs/abc", key: mc.token}).field(t, "phone")
	a.do(t, req{method: "PUT", path: "/v1/opt-outs/" + url.PathEscape("+14155550123"), key: mc.token, body: `{"optedOut":true}`, invalid: true}).field(t, "source")
	put := a.do(t, req{method: "PUT", path: "/v1/opt-outs/" + url.PathEscape("+14155550123"), key: mc.token, body: `{"optedOut":true,"source":"phone call"}`})
	if put.Status != 200 || put.Body["optedOut"] != true || put.Body["source"] != "phone call" {
		t.Fatalf("put: %d %s", put.Status, put.Raw)
	}
	ct := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid, key: mc.token})
	if !strings.Contains(string(ct.Raw), `"topic":"sms","value":"False"`) {
		t.Fatalf("consent after an opt-out by phone call: %s", ct.Raw)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"contactId":"` + cid + `","body":"hi"}`}).problem(t, 409, "recipient_opted_out")
	// For the whole customer: from any of its numbers.
	second := a.do(t, req{method: "POST", path: "/v1/customers/" + mc.id + "/phone-numbers", key: a.key, body: `{"country":"US"}`})
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"+14155550123","from":"` + second.Body["phoneNumber"].(string) + `","body":"hi"}`}).problem(t, 409, "recipient_opted_out")
	// Another customer knows nothing of it.
	other := a.messagingCustomer(t, "optouts-other")
	if r := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape("+14155550123"), key: other.token}); r.Body["optedOut"] != false {
		t.Fatalf("an opt-out leaked across customers: %s", r.Raw)
	}
	// Double opt-in: a YES confirms a consent awaiting confirmation.
	a.do(t, req{method: "PUT", path: "/v1/opt-outs/" + url.PathEscape("+14155550123"), key: mc.token, body: `{"optedOut":false,"source":"web form"}`})
	sid := newSID("SM")
	a.hook(t, "/v1/webhooks/twilio/inbound", map[string]string{"AccountSid": mc.accountSID, "MessageSid": sid, "From": "+14155550124", "To": mc.number, "Body": "yes"},
		a.platform.Sandbox.AuthToken(mc.accountSID), "")
	c2 := a.do(t, req{method: "POST", path: "/v1/contacts", key: mc.token, body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"+14155550125","consents":[{"topic":"sms","value":"AwaitingConfirmation"}]}]}`})
	cid2 := c2.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	a.hook(t, "/v1/webhooks/twilio/inbound", a.received(mc.accountSID, "+14155550125", mc.number, " Yes "),
		a.platform.Sandbox.AuthToken(mc.accountSID), "")
	a.waitConfirmations(t)
	ct2 := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid2, key: mc.token})
	if !strings.Contains(string(ct2.Raw), `"topic":"sms","value":"True"`) || !strings.Contains(string(ct2.Raw), `"source":"sms:YES"`) {
		t.Fatalf("double opt-in not confirmed: %s", ct2.Raw)
	}
	in := a.do(t, req{method: "GET", path: "/v1/messages?phone=" + url.QueryEscape("+14155550125"), key: mc.token})
	if items := in.Body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["keyword"] != "YES" {
		t.Fatalf("keyword: %s", in.Raw)
	}
}

func TestMessagesStayInTheirTenant(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mine := a.messagingCustomer(t, "tenant-a")
	theirs := a.messagingCustomer(t, "tenant-b")
	r := a.do(t, req{method: "POST", path: "/v1/messages", key: mine.token, body: `{"to":"+14155550130","body":"private"}`})
	id := r.Body["id"].(string)
	a.do(t, req{method: "GET", path: "/v1/messages/" + id, key: theirs.token}).problem(t, 404, "not_found")
	a.do(t, req{method: "DELETE", path: "/v1/messages/" + id, key: theirs.token}).problem(t, 404, "not_found")
	if items := a.do(t, req{method: "GET", path: "/v1/messages", key: theirs.token}).Body["items"].([]any); len(items) != 0 {
		t.Fatalf("another customer lists %d messages", len(items))
	}
	if m := a.do(t, req{method: "GET", path: "/v1/messages/" + id, key: mine.token}); m.Body["body"] != "private" || m.Body["redactedAt"] != nil {
		t.Fatalf("the other customer's DELETE touched it: %s", m.Raw)
	}
	// A callback signed by one sub-account for the other's message.
	st, _ := a.hook(t, "/v1/webhooks/twilio/status?mid="+id, map[string]string{"AccountSid": theirs.accountSID, "MessageSid": newSID("SM"), "MessageStatus": "failed", "ErrorCode": "30008"},
		a.platform.Sandbox.AuthToken(theirs.accountSID), "")
	if st != 200 {
		t.Fatalf("callback: %d", st)
	}
	if m := a.waitMessage(t, mine.token, id, func(m map[string]any) bool { return m["status"] == "delivered" || m["status"] == "failed" }); m["status"] != "delivered" {
		t.Fatalf("another sub-account's callback moved the message: %v", m["status"])
	}
}

func TestAnonymizeRedactsMessagesAtTwilio(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: 100 * time.Millisecond})
	mc := a.messagingCustomer(t, "anon")
	c := a.do(t, req{method: "POST", path: "/v1/contacts", key: mc.token, body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"+14155550140","firstName":"Eve"}]}`})
	cid := c.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	out := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"contactId":"` + cid + `","body":"secret plans"}`})
	m := a.waitMessage(t, mc.token, out.Body["id"].(string), func(m map[string]any) bool { return m["status"] == "delivered" })
	a.hook(t, "/v1/webhooks/twilio/inbound", map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": "+14155550140", "To": mc.number, "Body": "my answer"},
		a.platform.Sandbox.AuthToken(mc.accountSID), "")
	if r := a.do(t, req{method: "DELETE", path: "/v1/contacts/" + cid + "?anonymize=true", key: mc.token}); r.Status != 200 {
		t.Fatalf("anonymize: %d %s", r.Status, r.Raw)
	}
	list := a.do(t, req{method: "GET", path: "/v1/messages?contactId=" + cid, key: mc.token})
	items := list.Body["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("%d messages of the contact", len(items))
	}
	for _, it := range items {
		m := it.(map[string]any)
		if m["body"] != nil || m["redactedAt"] == nil {
			t.Fatalf("not redacted: %v", m)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for _, tm := range a.platform.Sandbox.SandboxMessages(mc.accountSID) {
			if tm.SID == m["twilioSid"] {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Twilio's copy of the anonymized contact's message stayed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMessageMarkersStaySealed: bodies and phone numbers of messages are
// never in any file under the data dir nor in any log line; after
// NO_RETENTION nothing of the messages can be read.
func TestMessageMarkersStaySealed(t *testing.T) {
	logs := &syncBuffer{}
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: 50 * time.Millisecond, logs: logs})
	mc := a.messagingCustomer(t, "markers")
	const body, phone, inbound = "zebra-marker-51829", "+14155550187", "okapi-marker-73310"
	r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"` + body + `"}`})
	id := r.Body["id"].(string)
	a.waitMessage(t, mc.token, id, func(m map[string]any) bool { return m["status"] == "delivered" })
	a.hook(t, "/v1/webhooks/twilio/inbound", map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": inbound},
		a.platform.Sandbox.AuthToken(mc.accountSID), "")
	a.hook(t, "/v1/webhooks/twilio/inbound", map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": "STOP"},
		a.platform.Sandbox.AuthToken(mc.accountSID), "")
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"` + body + `"}`}).problem(t, 409, "recipient_opted_out")
	markers := []string{body, inbound, phone, strings.TrimPrefix(phone, "+")}
	scan := func(when string) {
		err := filepath.WalkDir(a.db.DataDir(), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil // the socket
			}
			for _, m := range markers {
				if bytes.Contains(b, []byte(m)) {
					t.Errorf("%s: %s holds %q", when, filepath.Base(path), m)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markers {
			if strings.Contains(logs.String(), m) {
				t.Errorf("%s: the logs hold %q", when, m)
			}
		}
	}
	scan("live")
	if r := a.do(t, req{method: "POST", path: "/v1/customers/" + mc.id + "/terminate", key: a.key, body: `{"retention":{"strategy":"NO_RETENTION"}}`}); r.Body["status"] != "SHREDDED" {
		t.Fatalf("terminate: %s", r.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/messages/" + id, key: mc.token}).problem(t, 410, "data_shredded")
	if n, err := a.db.CountCustomerData(t.Context(), mc.id); err != nil || n != 0 {
		t.Fatalf("the shredded customer still has %d documents (%v)", n, err)
	}
	scan("shredded")
}
