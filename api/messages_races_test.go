package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/twilio"
)

// rvDo is a plain HTTP call, safe from many goroutines (no t.Fatal, no
// contract check).
func (a *testAPI) rvDo(method, path, key, body string, header map[string]string) (int, map[string]any, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	hr, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		return -1, nil, err.Error()
	}
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		hr.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return -1, nil, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

// rvHook posts a signed Twilio callback from any goroutine.
func (a *testAPI) rvHook(path string, params map[string]string, token string) (int, string) {
	sig := twilio.Sign(token, a.srv.URL+path, params)
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	hr, _ := http.NewRequest("POST", a.srv.URL+path, strings.NewReader(form.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("X-Twilio-Signature", sig)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// rvRace runs f(i) in n goroutines released at once.
func rvRace(n int, f func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer done.Done()
			ready.Done()
			<-start
			f(i)
		}(i)
	}
	ready.Wait()
	close(start)
	done.Wait()
}

func (a *testAPI) rvContact(t *testing.T, tok, phone, consent string) string {
	t.Helper()
	cons := ""
	if consent != "" {
		cons = `,"consents":[{"topic":"sms","value":"` + consent + `"}]`
	}
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok,
		body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"` + phone + `"` + cons + `}]}`})
	if r.Status != 200 {
		t.Fatalf("contact: %d %s", r.Status, r.Raw)
	}
	return r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
}

func (a *testAPI) rvOptedOut(t *testing.T, tok, phone string) (bool, any) {
	t.Helper()
	o := a.do(t, req{method: "GET", path: "/v1/opt-outs/" + url.PathEscape(phone), key: tok})
	if o.Status != 200 {
		t.Fatalf("opt-out: %d %s", o.Status, o.Raw)
	}
	return o.Body["optedOut"] == true, o.Body["source"]
}

func (a *testAPI) rvSMSConsent(t *testing.T, tok, cid string) (string, string) {
	t.Helper()
	ct := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid, key: tok})
	cs, _ := ct.Body["consents"].([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		if m["topic"] == "sms" {
			v, _ := m["value"].(string)
			s, _ := m["source"].(string)
			return v, s
		}
	}
	return "", ""
}

// API.md: "A retried callback (same MessageSid, same status) changes nothing
// and is still 200." A STOP that Twilio retries after the number has sent
// START must not opt it out again.
func TestRetriedStopAfterStartChangesNothing(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-retry-stop")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const phone = "+14155550161"
	cid := a.rvContact(t, mc.token, phone, "True")
	stop := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": "STOP"}
	start := a.received(mc.accountSID, phone, mc.number, "START")
	for _, p := range []map[string]string{stop, start} {
		if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", p, tok, ""); st != 200 {
			t.Fatalf("inbound: %d %s", st, raw)
		}
	}
	a.waitConfirmations(t)
	if out, src := a.rvOptedOut(t, mc.token, phone); out || src != "sms:START" {
		t.Fatalf("after START: optedOut=%v source=%v", out, src)
	}
	// Twilio retries the STOP callback (its first answer was lost).
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", stop, tok, ""); st != 200 {
		t.Fatalf("retried STOP: %d %s", st, raw)
	}
	if out, src := a.rvOptedOut(t, mc.token, phone); out || src != "sms:START" {
		t.Errorf("a retried STOP callback changed the opt-out: optedOut=%v source=%v (want false, sms:START)", out, src)
	}
	if v, s := a.rvSMSConsent(t, mc.token, cid); v != "True" {
		t.Errorf("a retried STOP callback moved the contact's sms consent to %s (%s)", v, s)
	}
	if r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"still there?"}`}); r.Status != 202 {
		t.Errorf("send after a retried STOP: %d %s", r.Status, r.Raw)
	}
}

// API.md: a retried status callback changes nothing. A 21610 failure
// callback retried after the recipient opted back in must not opt them out
// again.
func TestRetriedOptOutStatusCallbackChangesNothing(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: time.Hour})
	mc := a.messagingCustomer(t, "rv-retry-21610")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const phone = "+14155550162"
	r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + phone + `","body":"hello"}`})
	if r.Status != 202 {
		t.Fatalf("send: %d %s", r.Status, r.Raw)
	}
	mid := r.Body["id"].(string)
	m := a.waitMessage(t, mc.token, mid, func(m map[string]any) bool { return m["twilioSid"] != nil && m["status"] == "sent" })
	sid := m["twilioSid"].(string)
	cb := map[string]string{"AccountSid": mc.accountSID, "MessageSid": sid, "SmsSid": sid, "MessageStatus": "failed", "ErrorCode": "21610", "From": mc.number, "To": phone}
	path := "/v1/webhooks/twilio/status?mid=" + mid
	if st, raw := a.hook(t, path, cb, tok, ""); st != 200 {
		t.Fatalf("status: %d %s", st, raw)
	}
	if out, src := a.rvOptedOut(t, mc.token, phone); !out || src != "twilio:21610" {
		t.Fatalf("after 21610: optedOut=%v source=%v", out, src)
	}
	// The recipient opts back in.
	in := a.received(mc.accountSID, phone, mc.number, "UNSTOP")
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", in, tok, ""); st != 200 {
		t.Fatalf("inbound: %d %s", st, raw)
	}
	if out := a.waitOptOut(t, mc.token, phone, false).Body["optedOut"]; out != false {
		t.Fatal("UNSTOP did not opt back in")
	}
	// Twilio retries the same status callback.
	if st, raw := a.hook(t, path, cb, tok, ""); st != 200 {
		t.Fatalf("retried status: %d %s", st, raw)
	}
	if out, src := a.rvOptedOut(t, mc.token, phone); out {
		t.Errorf("a retried 21610 status callback opted the number out again (source %v)", src)
	}
}

// API.md: "a YES or START from a contact whose sms consent is
// AwaitingConfirmation confirms it (double opt-in)". An opt-in recorded by
// PUT /v1/opt-outs (a form, a call) is not a YES/START by SMS.
func TestPutOptInDoesNotConfirmDoubleOptIn(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-put-doi")
	const phone = "+14155550163"
	cid := a.rvContact(t, mc.token, phone, "AwaitingConfirmation")
	put := a.do(t, req{method: "PUT", path: "/v1/opt-outs/" + url.PathEscape(phone), key: mc.token, body: `{"optedOut":false,"source":"web form"}`})
	if put.Status != 200 {
		t.Fatalf("put: %d %s", put.Status, put.Raw)
	}
	if v, s := a.rvSMSConsent(t, mc.token, cid); v != "AwaitingConfirmation" {
		t.Errorf("PUT opt-out {optedOut:false} confirmed a double opt-in: consent %s, source %q", v, s)
	}
}

// Concurrent identical inbound callbacks (one MessageSid): one message, one
// timeline item, the keyword applied once.
func TestConcurrentInboundSameSid(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-conc-inbound")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	for round := 0; round < 3; round++ {
		phone := fmt.Sprintf("+1415555017%d", round)
		cid := a.rvContact(t, mc.token, phone, "True")
		before := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid, key: mc.token}).Body["version"]
		p := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": "Stop", "NumMedia": "0"}
		var mu sync.Mutex
		var bad []string
		rvRace(20, func(int) {
			if st, raw := a.rvHook("/v1/webhooks/twilio/inbound", p, tok); st != 200 {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%d %s", st, raw))
				mu.Unlock()
			}
		})
		if len(bad) > 0 {
			t.Errorf("round %d: %d of 20 identical callbacks not 200: %v", round, len(bad), bad[0])
		}
		l := a.do(t, req{method: "GET", path: "/v1/messages?direction=inbound&phone=" + url.QueryEscape(phone), key: mc.token})
		if n := len(l.Body["items"].([]any)); n != 1 {
			t.Errorf("round %d: %d inbound messages stored for one MessageSid", round, n)
		}
		tl := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid + "/timeline?limit=200", key: mc.token})
		n := strings.Count(string(tl.Raw), `"message.inbound"`)
		if n != 1 {
			t.Errorf("round %d: %d message.inbound timeline items", round, n)
		}
		after := a.do(t, req{method: "GET", path: "/v1/contacts/" + cid, key: mc.token}).Body["version"]
		if after.(float64)-before.(float64) != 1 {
			t.Errorf("round %d: contact went from version %v to %v (the STOP applied more than once)", round, before, after)
		}
		if out, _ := a.rvOptedOut(t, mc.token, phone); !out {
			t.Errorf("round %d: not opted out", round)
		}
	}
}

// Idempotent sends racing with one key: one message, every answer its id.
func TestConcurrentIdempotentSends(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: time.Hour})
	mc := a.messagingCustomer(t, "rv-conc-send")
	for round := 0; round < 3; round++ {
		key := fmt.Sprintf("rv-send-%d", round)
		body := fmt.Sprintf(`{"to":"+1415555018%d","body":"round %d"}`, round, round)
		ids := make([]string, 20)
		sts := make([]int, 20)
		rvRace(20, func(i int) {
			st, m, _ := a.rvDo("POST", "/v1/messages", mc.token, body, map[string]string{"Idempotency-Key": key})
			sts[i] = st
			if id, ok := m["id"].(string); ok {
				ids[i] = id
			}
		})
		for i := range ids {
			if sts[i] != 202 || ids[i] != ids[0] {
				t.Errorf("round %d: answer %d: %d id %q (first %q)", round, i, sts[i], ids[i], ids[0])
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := len(a.platform.Sandbox.SandboxMessages(mc.accountSID))
		if n == 3 {
			break
		}
		if n > 3 || time.Now().After(deadline) {
			t.Fatalf("Twilio holds %d messages, want 3", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l := a.do(t, req{method: "GET", path: "/v1/messages?direction=outbound", key: mc.token})
	if n := len(l.Body["items"].([]any)); n != 3 {
		t.Errorf("%d outbound messages stored, want 3", n)
	}
}

// Concurrent redactions of one message all answer 200 with the body gone.
func TestConcurrentRedactions(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: 200 * time.Millisecond})
	mc := a.messagingCustomer(t, "rv-conc-redact")
	for round := 0; round < 3; round++ {
		r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: fmt.Sprintf(`{"to":"+1415555019%d","body":"secret %d"}`, round, round)})
		if r.Status != 202 {
			t.Fatalf("send: %d %s", r.Status, r.Raw)
		}
		mid := r.Body["id"].(string)
		var mu sync.Mutex
		var bad []string
		rvRace(20, func(int) {
			st, m, raw := a.rvDo("DELETE", "/v1/messages/"+mid, mc.token, "", nil)
			if st != 200 || m["body"] != nil || m["redactedAt"] == nil {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%d %s", st, raw))
				mu.Unlock()
			}
		})
		if len(bad) > 0 {
			t.Errorf("round %d: %d of 20 concurrent redactions failed, e.g. %s", round, len(bad), bad[0])
		}
		g := a.do(t, req{method: "GET", path: "/v1/messages/" + mid, key: mc.token})
		if g.Body["body"] != nil {
			t.Errorf("round %d: body still there: %s", round, g.Raw)
		}
	}
}

// Number purchases racing under one Idempotency-Key buy one number.
func TestConcurrentNumberPurchaseSameKey(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	id, _ := a.activeCustomer(t, a.key, "rv-conc-buy")
	path := "/v1/customers/" + id + "/phone-numbers"
	for round := 0; round < 3; round++ {
		key := fmt.Sprintf("rv-buy-%d", round)
		sts := make([]int, 20)
		ids := make([]string, 20)
		rvRace(20, func(i int) {
			st, m, _ := a.rvDo("POST", path, a.key, `{"country":"US"}`, map[string]string{"Idempotency-Key": key})
			sts[i] = st
			if s, ok := m["id"].(string); ok {
				ids[i] = s
			}
			if st == 409 && m["code"] != "idempotency_in_progress" {
				sts[i] = -409
			}
		})
		first := ""
		for i := range sts {
			switch sts[i] {
			case 201:
				if first == "" {
					first = ids[i]
				} else if ids[i] != first {
					t.Errorf("round %d: two different numbers answered under one key: %s, %s", round, first, ids[i])
				}
			case 409:
			default:
				t.Errorf("round %d: answer %d", round, sts[i])
			}
		}
	}
	l := a.do(t, req{method: "GET", path: path, key: a.key})
	if n := len(l.Body["items"].([]any)); n != 3 {
		t.Errorf("%d numbers bought under 3 keys", n)
	}
}

// STOP and START from one number racing: the opt-out ledger and the
// contact's sms consent must end in step (API.md: "A matching contact's
// consent topic sms follows").
func TestConcurrentStopStartStayInStep(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-stop-start")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const phone = "+14155550199"
	cid := a.rvContact(t, mc.token, phone, "True")
	for round := 0; round < 8; round++ {
		rvRace(16, func(i int) {
			body := "STOP"
			if i%2 == 1 {
				body = "START"
			}
			p := a.received(mc.accountSID, phone, mc.number, body)
			a.rvHook("/v1/webhooks/twilio/inbound", p, tok)
		})
		a.waitConfirmations(t)
		out, src := a.rvOptedOut(t, mc.token, phone)
		v, s := a.rvSMSConsent(t, mc.token, cid)
		if (out && v != "False") || (!out && v != "True") {
			t.Errorf("round %d: opt-out ledger says optedOut=%v (%v), contact's sms consent says %s (%s)", round, out, src, v, s)
		}
	}
}

// Partner isolation on phone-number routes: another partner can neither buy
// into nor list the customer's numbers.
func TestNumbersPartnerIsolation(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-numbers-iso")
	path := "/v1/customers/" + mc.id + "/phone-numbers"
	a.do(t, req{method: "POST", path: path, key: a.other, body: `{"country":"US"}`}).problem(t, 404, "not_found")
	a.do(t, req{method: "GET", path: path, key: a.other}).problem(t, 404, "not_found")
	l := a.do(t, req{method: "GET", path: path, key: a.key})
	if n := len(l.Body["items"].([]any)); n != 1 {
		t.Errorf("%d numbers after another partner's attempt", n)
	}
}

// API.md: "Anonymizing or deleting a contact also redacts its messages".
// Inbound messages that arrive while the contact is being deleted are
// linked to it and must not survive with their body.
func TestDeleteContactRacingInbound(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-del-race")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	for round := 0; round < 4; round++ {
		phone := fmt.Sprintf("+1415555021%d", round)
		cid := a.rvContact(t, mc.token, phone, "")
		rvRace(17, func(i int) {
			if i == 0 {
				time.Sleep(time.Duration(round) * 5 * time.Millisecond)
				a.rvDo("DELETE", "/v1/contacts/"+cid, mc.token, "", nil)
				return
			}
			p := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": fmt.Sprintf("secret %d", i)}
			a.rvHook("/v1/webhooks/twilio/inbound", p, tok)
		})
		if st, _, _ := a.rvDo("GET", "/v1/contacts/"+cid, mc.token, "", nil); st != 404 {
			t.Fatalf("contact still there: %d", st)
		}
		l := a.do(t, req{method: "GET", path: "/v1/messages?limit=200&contactId=" + cid, key: mc.token})
		kept := 0
		for _, it := range l.Body["items"].([]any) {
			if it.(map[string]any)["body"] != nil {
				kept++
			}
		}
		if kept > 0 {
			t.Errorf("round %d: %d messages linked to the deleted contact keep their body", round, kept)
		}
	}
}

// Redactions racing with status callbacks: the body never comes back.
func TestRedactRacingStatusCallbacks(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: time.Hour})
	mc := a.messagingCustomer(t, "rv-redact-status")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	for round := 0; round < 3; round++ {
		r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: fmt.Sprintf(`{"to":"+1415555022%d","body":"secret %d"}`, round, round)})
		mid := r.Body["id"].(string)
		m := a.waitMessage(t, mc.token, mid, func(m map[string]any) bool { return m["twilioSid"] != nil })
		sid := m["twilioSid"].(string)
		rvRace(20, func(i int) {
			if i%2 == 0 {
				a.rvDo("DELETE", "/v1/messages/"+mid, mc.token, "", nil)
				return
			}
			st := []string{"sent", "delivered"}[i%4/2]
			a.rvHook("/v1/webhooks/twilio/status?mid="+mid, map[string]string{"AccountSid": mc.accountSID, "MessageSid": sid, "MessageStatus": st}, tok)
		})
		g := a.do(t, req{method: "GET", path: "/v1/messages/" + mid, key: mc.token})
		if g.Body["body"] != nil || g.Body["redactedAt"] == nil || g.Body["status"] != "delivered" {
			t.Errorf("round %d: %s", round, g.Raw)
		}
	}
}

// An inbound message from the phone of a contact deleted before is linked
// to no contact (API.md: "linked to the contact whose phone or sms channel
// matches From (else contactId null)").
func TestInboundAfterContactDeleted(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "rv-del-after")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const phone = "+14155550231"
	cid := a.rvContact(t, mc.token, phone, "")
	if r := a.do(t, req{method: "DELETE", path: "/v1/contacts/" + cid, key: mc.token}); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	p := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": "hello after"}
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", p, tok, ""); st != 200 {
		t.Fatalf("inbound: %d %s", st, raw)
	}
	l := a.do(t, req{method: "GET", path: "/v1/messages?phone=" + url.QueryEscape(phone), key: mc.token})
	items := l.Body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["contactId"] != nil {
		t.Errorf("inbound after the contact's deletion: %s", l.Raw)
	}
}
