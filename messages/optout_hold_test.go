package messages_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/racing"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

// sendTo accepts a message to one recipient through svc.
func (e *env) sendTo(t *testing.T, svc *messages.Service, to, body string) messages.Message {
	t.Helper()
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := h.Send(t.Context(), messages.SendInput{To: &to, Body: &body}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inbound applies a signed inbound SMS from phone, as the webhook would.
func (e *env) inbound(svc *messages.Service, token, sid, phone, body string) error {
	url := e.p.PublicURL + messages.InboundPath
	params := map[string]string{"AccountSid": e.accountSID, "MessageSid": sid, "SmsSid": sid, "From": phone, "To": e.number, "Body": body, "NumMedia": "0"}
	form := neturl.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	return svc.Inbound(context.Background(), messages.Webhook{URL: url, Form: form, Signature: twilio.Sign(token, url, params)})
}

// holdOnce holds svc's sender after its first claim of message id, before
// its pre-create check: held is closed once it is there, and it goes on
// when release is closed.
func holdOnce(svc *messages.Service) (held chan string, release chan struct{}) {
	held, release = make(chan string, 1), make(chan struct{})
	var once sync.Once
	messages.HoldBeforeCheck(svc, func(id string) {
		first := false
		once.Do(func() { first = true })
		if first {
			held <- id
			<-release
		}
	})
	return held, release
}

// TestStopWhileHeldBeforeCheckFailsUnsent: a STOP recorded after the sender
// claimed the attempt and before its pre-create check ends the message
// failed with 21610, and nothing is created at Twilio.
func TestStopWhileHeldBeforeCheckFailsUnsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, messages.MinAttemptLease)
	held, release := holdOnce(svc)
	m := e.send(t, svc, "held-stop-marker")
	defer run(svc)()
	select {
	case id := <-held:
		if id != m.ID {
			t.Fatalf("held %s, want %s", id, m.ID)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the sender never claimed the attempt")
	}
	if err := e.inbound(svc, e.token(t), newSMSSID(), recipient, "STOP"); err != nil {
		t.Fatal(err)
	}
	close(release)
	got := e.wait(t, svc, m.ID, func(m messages.Message) bool { return m.Status != messages.StatusAccepted })
	if got.Status != messages.StatusFailed || got.ErrorCode == nil || *got.ErrorCode != messages.CodeOptedOut || got.TwilioSID != nil {
		t.Fatalf("message %s, error %v, sid %v: want failed 21610 with no Twilio SID", got.Status, got.ErrorCode, got.TwilioSID)
	}
	if n := e.dbl.RouteCount(twiliotest.RouteMessageCreate); n != 0 || len(e.atTwilio("held-stop-marker")) != 0 {
		t.Fatalf("%d creates at Twilio after the STOP, want none", n)
	}
}

// TestStopRacingPreCreateCheck releases, again and again, the held sender
// and several copies of one STOP callback at once: either the check saw
// the STOP (failed 21610, nothing created) or the create came first
// (created exactly once, and the message ends as Twilio says); never
// both, never neither, and the STOP is always recorded once.
func TestStopRacingPreCreateCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.token(t)
	stopped, created := 0, 0
	for round := range 8 {
		svc := e.service(e.client, messages.MinAttemptLease)
		held, release := holdOnce(svc)
		phone := fmt.Sprintf("+141555503%02d", round)
		body := fmt.Sprintf("race-marker-%d", round)
		m := e.sendTo(t, svc, phone, body)
		stop := run(svc)
		select {
		case <-held:
		case <-time.After(15 * time.Second):
			t.Fatal("the sender never claimed the attempt")
		}
		sid := newSMSSID()
		var errs [4]error
		racing.Release(len(errs)+1, func(i int) {
			if i == len(errs) {
				// Spread over how long a STOP takes to record, so that
				// both orders come up.
				time.Sleep(time.Duration(round) * 4 * time.Millisecond)
				close(release)
				return
			}
			errs[i] = e.inbound(svc, token, sid, phone, "STOP")
		})
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: STOP: %v", round, err)
			}
		}
		got := e.wait(t, svc, m.ID, func(m messages.Message) bool {
			return m.Status != messages.StatusAccepted
		})
		stop()
		at := len(e.atTwilio(body))
		switch {
		case got.Status == messages.StatusFailed && got.ErrorCode != nil && *got.ErrorCode == messages.CodeOptedOut && got.TwilioSID == nil && at == 0:
			stopped++
		case got.TwilioSID != nil && at == 1 && got.Status != messages.StatusFailed:
			created++
		default:
			t.Fatalf("round %d: message %s (error %v, sid %v) with %d at Twilio: neither stopped nor sent once", round, got.Status, got.ErrorCode, got.TwilioSID, at)
		}
		h, err := svc.Open(t.Context(), e.customerID)
		if err != nil {
			t.Fatal(err)
		}
		o, err := h.OptOut(t.Context(), phone)
		if err != nil || !o.OptedOut || o.Source == nil || *o.Source != "sms:STOP" {
			t.Fatalf("round %d: the STOP was lost: %+v %v", round, o, err)
		}
		in, _, err := h.List(t.Context(), messages.Query{Phone: phone, Direction: messages.Inbound, Limit: 10})
		if err != nil || len(in) != 1 {
			t.Fatalf("round %d: %d inbound STOPs stored (%v), want 1", round, len(in), err)
		}
	}
	t.Logf("stopped before the create %d times, created first %d times", stopped, created)
}

func newSMSSID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "SM" + hex.EncodeToString(b)
}

// TestOptOutOfTheLastReleaseChanges: an opt-out written by the last
// release (its document, no claim of version 1) still changes: the next
// record claims the next version, not a version 1 it takes for free.
func TestOptOutOfTheLastReleaseChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 0)
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	const phone = "+14155550166"
	if _, err := h.SetOptOut(t.Context(), phone, true, "form"); err != nil {
		t.Fatal(err)
	}
	// What the last release left: the document alone.
	if _, err := e.p.DB.Tenant(e.customerID).Collection("opt_out_claims").DeleteRange(t.Context(), store.Range{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SetOptOut(t.Context(), phone, false, "call"); err != nil {
		t.Fatal(err)
	}
	if o, err := h.OptOut(t.Context(), phone); err != nil || o.OptedOut {
		t.Fatalf("the opt-in over an old opt-out was lost: %+v %v", o, err)
	}
}
