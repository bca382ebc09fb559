package webhooks_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/webhooks"
)

// TestSlowEndpointDoesNotHoldTheDueList: a slow receiver with hundreds of
// due deliveries (more than one read of the due list) does not hold back
// another owner's retry.
func TestSlowEndpointDoesNotHoldTheDueList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	slow := newReceiver(t)
	slow.answer = func(int) int { time.Sleep(9 * time.Second); return http.StatusOK }
	oA := webhooks.Partner(e.partner.ID)
	epA := e.endpoint(t, oA, slow, "*")
	other := e.worker(t) // another serve process's writes: no hand-off here
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				if _, err := other.Test(t.Context(), oA, epA.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	fast := newReceiver(t)
	fast.answer = func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	oB := webhooks.Customer(e.customerID)
	epB := e.endpoint(t, oB, fast, "*")
	d, err := e.p.Webhooks.Test(t.Context(), oB, epB.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, oB, epB.ID, d.ID, webhooks.StatusDelivered)
}

// TestTakenBackClaimPushesNothing: a creation whose claim won but whose
// document was refused (another unique index: a space taken), the claim
// then taken back, pushes no event, even while the claim stood.
func TestTakenBackClaimPushesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	o := webhooks.Partner(e.partner.ID)
	e.endpoint(t, o, r, "customer.registered")
	mk := func(id string) webhooks.Change {
		return webhooks.Change{
			Claim:  webhooks.ClaimRef{Control: true, Coll: "test_claims", ClaimID: id + ":1", Writer: "w", Doc: "test_docs", DocID: id},
			Events: []webhooks.Pending{{Type: "customer.registered", CustomerID: id, Data: map[string]string{"id": id}}},
		}
	}
	if err := e.p.Webhooks.Hold(t.Context(), o, []webhooks.Change{mk("refused"), mk("made")}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	claims, docs := e.p.DB.Control.Collection("test_claims"), e.p.DB.Control.Collection("test_docs")
	if _, err := claims.InsertMany(ctx, []any{bson.M{"_id": "refused:1", "writer": "w"}, bson.M{"_id": "made:1", "writer": "w"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the refused one's claim stands a while
	if _, err := docs.InsertOne(ctx, bson.M{"_id": "made"}); err != nil {
		t.Fatal(err)
	}
	if _, err := claims.DeleteOne(ctx, bson.M{"_id": "refused:1"}); err != nil {
		t.Fatal(err)
	}
	evs := r.wait(1)
	time.Sleep(time.Second)
	if evs = r.wait(1); len(evs) != 1 || evs[0].CustomerID != "made" {
		t.Fatalf("events: %+v", evs)
	}
}

// TestRepeatedHoldKeepsNoBody: a change held again after its event was
// delivered (an inbound webhook Twilio retried) makes no delivery and
// keeps no body.
func TestRepeatedHoldKeepsNoBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	o := webhooks.Customer(e.customerID)
	e.endpoint(t, o, r, "message.received")
	docID := "msg-repeated"
	if err := e.p.DB.Tenant(e.customerID).Collection("messages").InsertOne(t.Context(), bson.D{{Key: "_id", Value: docID}}); err != nil {
		t.Fatal(err)
	}
	hold := func() {
		if err := e.p.Webhooks.Hold(t.Context(), o, []webhooks.Change{{Claim: webhooks.ClaimRef{Coll: "messages", ClaimID: docID},
			Events: []webhooks.Pending{{Type: "message.received", CustomerID: e.customerID, Data: map[string]any{"body": "secret text"}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	bodies := func() int {
		n, err := e.p.DB.Tenant(e.customerID).Collection("webhook_bodies").Count(t.Context(), store.Range{})
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	hold()
	r.wait(1)
	for dl := time.Now().Add(5 * time.Second); bodies() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(dl) {
			t.Fatal("the body stayed after delivery")
		}
	}
	hold()
	time.Sleep(time.Second)
	if n, d := bodies(), r.duplicates(); n != 0 || d != 0 {
		t.Fatalf("after the repeat: %d bodies kept, %d duplicates", n, d)
	}
}

// TestDisablingFailsPendingDeliveries: an endpoint disabled by its owner
// fails its pending deliveries at once; a retry once it is enabled sends
// them.
func TestDisablingFailsPendingDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // no worker yet: the deliveries stay pending
	r := newReceiver(t)
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	d, err := e.p.Webhooks.Test(t.Context(), o, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	off, on := false, true
	if _, err := e.p.Webhooks.Update(t.Context(), o, ep.ID, store.AnyVersion, webhooks.Input{Enabled: &off}, nil); err != nil {
		t.Fatal(err)
	}
	ds, _, err := e.p.Webhooks.Deliveries(t.Context(), o, ep.ID, webhooks.ListInput{Status: webhooks.StatusFailed, Limit: 5})
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID || ds[0].LastError == nil || *ds[0].LastError != "endpoint disabled" {
		t.Fatalf("after disabling: %+v %v", ds, err)
	}
	if _, err := e.p.Webhooks.Update(t.Context(), o, ep.ID, store.AnyVersion, webhooks.Input{Enabled: &on}, nil); err != nil {
		t.Fatal(err)
	}
	run(t, e.p.Webhooks)
	if _, err := e.p.Webhooks.Retry(t.Context(), o, ep.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	r.wait(1)
}

// TestFailingEndpointIsDisabledAfterItsDays: an endpoint whose receiver
// keeps failing is disabled once its (scaled) 5 days since the first
// failure are up, though no event came since its deliveries gave up.
func TestFailingEndpointIsDisabledAfterItsDays(t *testing.T) {
	t.Parallel()
	e := newEnvScaled(t, 0.00001) // 5 days: 4.3 s; 3 days: 2.6 s
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	r.answer = func(int) int { return http.StatusInternalServerError }
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	if _, err := e.p.Webhooks.Test(t.Context(), o, ep.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cur, err := e.p.Webhooks.Get(t.Context(), o, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !cur.Enabled {
			if time.Since(start) < 3*time.Second {
				t.Fatalf("disabled after %s, before its 5 (scaled) days", time.Since(start))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a failing endpoint stayed enabled past its 5 days")
		}
	}
}

// TestErasureTakesBackUndeliveredEvents: a contact deleted while its
// contact.created is still undelivered (the receiver failing) takes that
// event back with its body; contact.deleted (its id alone) still goes.
func TestErasureTakesBackUndeliveredEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	var up atomic.Bool
	r.answer = func(int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	o := webhooks.Customer(e.customerID)
	e.endpoint(t, o, r, "contact.created", "contact.deleted")
	h, err := e.p.Contacts.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Upsert(t.Context(), contacts.ModeAdd, contacts.KeyEmail, []contacts.Input{{Email: str("erased@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); r.n.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no attempt of contact.created")
		}
	}
	if err := h.Delete(t.Context(), res[0].ID); err != nil {
		t.Fatal(err)
	}
	up.Store(true)
	evs := r.wait(1)
	time.Sleep(time.Second)
	if evs = r.wait(1); len(evs) != 1 || evs[0].Type != "contact.deleted" {
		t.Fatalf("events after the erasure: %+v", evs)
	}
	n, err := e.p.DB.Tenant(e.customerID).Collection("webhook_bodies").Count(t.Context(), store.Range{})
	if err != nil || n != 0 {
		t.Fatalf("%d bodies kept after the erasure (%v)", n, err)
	}
}
