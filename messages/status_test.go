package messages_test

import (
	"fmt"
	"math/rand/v2"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

// token is the sub-account's own auth token at the double.
func (e *env) token(t *testing.T) string {
	t.Helper()
	for _, a := range e.dbl.Accounts() {
		if a.SID == e.accountSID {
			return a.AuthToken
		}
	}
	t.Fatal("no sub-account at the double")
	return ""
}

// callback applies a signed status callback as the webhook would.
func (e *env) callback(t *testing.T, svc *messages.Service, token, mid, sid, status, code string) {
	t.Helper()
	url := e.p.PublicURL + messages.StatusPath + "?mid=" + mid
	params := map[string]string{"AccountSid": e.accountSID, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status}
	if code != "" {
		params["ErrorCode"] = code
	}
	form := neturl.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	if err := svc.StatusCallback(t.Context(), messages.Webhook{URL: url, Form: form, Signature: twilio.Sign(token, url, params)}, mid); err != nil {
		t.Errorf("callback %s: %v", status, err)
	}
}

var statusRank = map[string]int{"accepted": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}

// history is the message's status at every version, from its claims.
func (e *env) history(t *testing.T, id string) []string {
	t.Helper()
	out := []string{"accepted"}
	claims := e.p.DB.Tenant(e.customerID).Collection("message_claims")
	for v := 2; ; v++ {
		var c struct {
			State struct {
				Status string `bson:"status"`
			} `bson:"state"`
		}
		if err := claims.FindID(t.Context(), fmt.Sprintf("%s:%d", id, v)).Decode(&c); err != nil {
			return out
		}
		out = append(out, c.State.Status)
	}
}

// TestConcurrentStatusCallbacks releases duplicate and out-of-order
// callbacks at once, again and again: the message ends at its highest
// status and no version ever moved it back.
func TestConcurrentStatusCallbacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 0)
	defer run(svc)()
	token := e.token(t)
	for round := range 5 {
		m := e.send(t, svc, fmt.Sprintf("storm-%d", round))
		m = e.wait(t, svc, m.ID, sending)
		statuses := []string{"queued", "sending", "sent", "delivered", "sent", "delivered", "sending", "sent"}
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				e.callback(t, svc, token, m.ID, *m.TwilioSID, statuses[(i+round)%len(statuses)], "")
			}()
		}
		start.Done()
		wg.Wait()
		got := e.wait(t, svc, m.ID, func(m messages.Message) bool { return true })
		if got.Status != "delivered" || got.DeliveredAt == nil || got.SentAt == nil {
			t.Fatalf("round %d: ended at %s (sent %v, delivered %v)", round, got.Status, got.SentAt, got.DeliveredAt)
		}
		h := e.history(t, m.ID)
		for i := 1; i < len(h); i++ {
			if statusRank[h[i]] < statusRank[h[i-1]] || (statusRank[h[i-1]] == 3 && h[i] != h[i-1]) {
				t.Fatalf("round %d: status went %v", round, h)
			}
		}
		// Everything after delivered changed nothing: no version past it.
		versions := len(h)
		e.callback(t, svc, token, m.ID, *m.TwilioSID, "sent", "")
		e.callback(t, svc, token, m.ID, *m.TwilioSID, "delivered", "")
		if n := len(e.history(t, m.ID)); n != versions {
			t.Fatalf("round %d: late callbacks made %d versions more", round, n-versions)
		}
	}
}

// TestFailureIsNeverHidden: a delivered after a failure, in any order of
// arrival, keeps the failure and its code.
func TestFailureIsNeverHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 0)
	defer run(svc)()
	token := e.token(t)
	for round := range 6 {
		m := e.wait(t, svc, e.send(t, svc, fmt.Sprintf("fail-%d", round)).ID, sending)
		order := []string{"undelivered", "sent", "delivered"}
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		// The failure comes first in time; the others are late or retried.
		e.callback(t, svc, token, m.ID, *m.TwilioSID, "undelivered", "30003")
		for _, s := range order {
			e.callback(t, svc, token, m.ID, *m.TwilioSID, s, "30003")
		}
		got := e.wait(t, svc, m.ID, func(messages.Message) bool { return true })
		if got.Status != "undelivered" || got.ErrorCode == nil || *got.ErrorCode != 30003 || got.DeliveredAt != nil {
			t.Fatalf("round %d: %s %v delivered %v", round, got.Status, got.ErrorCode, got.DeliveredAt)
		}
	}
}

// TestCallbackForAnotherMessageSid changes nothing: a status whose
// MessageSid is not the message's Twilio SID is another message's.
func TestCallbackForAnotherMessageSid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 0)
	defer run(svc)()
	m := e.wait(t, svc, e.send(t, svc, "other-sid").ID, sending)
	before := len(e.history(t, m.ID))
	e.callback(t, svc, e.token(t), m.ID, "SM00000000000000000000000000000000", "failed", "30008")
	if got := e.wait(t, svc, m.ID, func(messages.Message) bool { return true }); got.Status != "sending" || len(e.history(t, m.ID)) != before {
		t.Fatalf("another SID's callback changed the message: %s", got.Status)
	}
}

// TestRedactionRetriedUntilTwilioConfirms: Twilio failing the delete
// twice does not stop the erasure of its copy.
func TestRedactionRetriedUntilTwilioConfirms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 0)
	defer run(svc)()
	m := e.wait(t, svc, e.send(t, svc, "redact-retry-marker").ID, sending)
	e.dbl.SetMessageStatus(*m.TwilioSID, "delivered")
	e.callback(t, svc, e.token(t), m.ID, *m.TwilioSID, "delivered", "")
	e.dbl.FailNextOn(twiliotest.RouteMessageDelete, 2, 500)
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := h.Redact(t.Context(), m.ID); err != nil || r.Body != nil || r.RedactedAt == nil {
		t.Fatalf("redact: %+v %v", r, err)
	}
	// A wait for the retries, not a time limit on them (a loaded machine).
	deadline := time.Now().Add(60 * time.Second)
	for len(e.atTwilio("redact-retry-marker")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Twilio's copy stayed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.dbl.RouteCount(twiliotest.RouteMessageDelete); n != 1 {
		t.Fatalf("%d deletes counted (failures are not), want 1", n)
	}
}
