package messages_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

// bodyIdxLeft counts the states of message id, the document and every
// claim, that still hold the body's blind index.
func (e *env) bodyIdxLeft(t *testing.T, id string) int {
	t.Helper()
	db := e.p.DB.Tenant(e.customerID)
	n := 0
	var d bson.M
	if err := db.Collection("messages").FindID(t.Context(), id).Decode(&d); err != nil {
		t.Fatal(err)
	}
	if _, ok := d["bodyIdx"]; ok {
		n++
	}
	// Version 1 is the document's insert: the claims start at 2.
	for v := 2; ; v++ {
		var c struct {
			State bson.M `bson:"state"`
		}
		if err := db.Collection("message_claims").FindID(t.Context(), fmt.Sprintf("%s:%d", id, v)).Decode(&c); err != nil {
			return n
		}
		if _, ok := c.State["bodyIdx"]; ok {
			n++
		}
	}
}

// TestRedactedMessageKeepsNoBodyIdx: a redacted message keeps no blind
// index of its body, in the document or any claim; one redacted while its
// answer from Twilio was lost keeps it until reconciliation found Twilio's
// copy, and then drops it.
func TestRedactedMessageKeepsNoBodyIdx(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, messages.MinAttemptLease)
	defer run(svc)()
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	m := e.send(t, svc, "idx-marker")
	e.wait(t, svc, m.ID, sending)
	if e.bodyIdxLeft(t, m.ID) == 0 {
		t.Fatal("a message not redacted has no bodyIdx: the test sees nothing")
	}
	if _, err := h.Redact(t.Context(), m.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.bodyIdxLeft(t, m.ID); n != 0 {
		t.Errorf("the redacted message keeps bodyIdx in %d states", n)
	}

	e.dbl.LoseNextMessageAnswer()
	lost := e.sendTo(t, svc, "+14155550177", "idx-lost-marker")
	deadline := time.Now().Add(10 * time.Second)
	for len(e.atTwilio("idx-lost-marker")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never created at Twilio")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := h.Redact(t.Context(), lost.ID); err != nil {
		t.Fatal(err)
	}
	if e.bodyIdxLeft(t, lost.ID) == 0 {
		t.Fatal("the index went while the lost answer was still to be reconciled")
	}
	got := e.wait(t, svc, lost.ID, func(m messages.Message) bool { return m.TwilioSID != nil })
	if at := e.dbl.Messages(); len(at) == 0 || got.Status == messages.StatusFailed {
		t.Fatalf("the lost answer was not reconciled: %s", got.Status)
	}
	// The earlier claims are rewritten just after the change that settled
	// the attempt shows.
	deadline = time.Now().Add(5 * time.Second)
	for n := e.bodyIdxLeft(t, lost.ID); n != 0; n = e.bodyIdxLeft(t, lost.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("the redacted message keeps bodyIdx in %d states after reconciliation", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedactJobRunEarlyIsNotLost: a sender may find a redaction's job
// between its pointer and the redaction (another process's poll). That run
// finds nothing redacted yet; the job must stay for the redaction, and be
// done by any process, Twilio failing its first delete.
func TestRedactJobRunEarlyIsNotLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.service(e.client, 0)
	stop := run(first)
	m := e.wait(t, first, e.send(t, first, "redact-early-marker").ID, sending)
	stop()
	e.dbl.SetMessageStatus(*m.TwilioSID, "delivered")
	e.callback(t, first, e.token(t), m.ID, *m.TwilioSID, "delivered", "")
	e.dbl.FailNextOn(twiliotest.RouteMessageDelete, 1, 500)

	// This process redacts and never runs its sender (its hand-off is not
	// seen); another process's sender runs the job early.
	redactor, other := e.service(e.client, 0), e.service(e.client, 0)
	messages.HoldBeforeRedact(redactor, func(id string) { messages.RunRedactJob(t.Context(), other, e.customerID, id) })
	h, err := redactor.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Redact(t.Context(), m.ID); err != nil {
		t.Fatal(err)
	}
	if n := e.dbl.RouteCount(twiliotest.RouteMessageDelete); n != 0 {
		t.Fatalf("the early run erased Twilio's copy of a message not yet redacted (%d deletes)", n)
	}
	defer run(other)()
	deadline := time.Now().Add(30 * time.Second)
	for len(e.atTwilio("redact-early-marker")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Twilio's copy stayed: the redaction's job was lost")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
