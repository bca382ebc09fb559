package contacts

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

func testHandle(t *testing.T) *Handle {
	t.Helper()
	return openHandle(t, storetest.MustOpen(t))
}

// openHandle opens the test customer on db through a new Service: what a
// freshly started process would do.
func openHandle(t *testing.T, db *store.DB) *Handle {
	t.Helper()
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-00000000000c", "k1", bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Cipher: func(context.Context, string) (*crypto.Cipher, error) { return c, nil }, Tenant: db.Tenant}
	h, err := s.Open(t.Context(), "0193a0c4-1111-7000-8000-00000000000c")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func email(i int) Field[string] {
	return Field[string]{Set: true, Value: fmt.Sprintf("u%d@example.com", i)}
}

// TestLargeBatch goes through the $in path of a batch (more than smallBatch
// items): creates, updates, an in-batch unique conflict, and the timeline of
// a batch's items surfacing on read.
func TestLargeBatch(t *testing.T) {
	h := testHandle(t)
	ctx := t.Context()
	var first []Input
	for i := range 30 {
		first = append(first, Input{Email: email(i)})
	}
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, first)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != "created" {
			t.Fatalf("first batch: %+v", r)
		}
	}
	var second []Input
	for i := 20; i < 50; i++ {
		second = append(second, Input{Email: email(i), CrmID: Field[string]{Set: true, Value: fmt.Sprintf("crm-%d", i)}})
	}
	// Items 48 and 49 want the same crmId: the later one loses.
	second[29].CrmID.Value = "crm-48"
	res, err = h.Upsert(ctx, ModeAddOrUpdate, KeyEmail, second)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := "created"
		switch {
		case i == 29:
			want = "failed"
		case i < 10:
			want = "updated"
		}
		if r.Outcome != want || r.Index != i {
			t.Fatalf("item %d (u%d): %+v, want %s", i, i+20, r, want)
		}
	}
	if res[29].Code != CodeConflict {
		t.Fatalf("in-batch conflict: %+v", res[29])
	}
	got, err := h.Lookup(ctx, KeyCrmID, "crm-48")
	if err != nil || len(got) != 1 || *got[0].Email != "u48@example.com" {
		t.Fatalf("crm-48 belongs to %+v (%v)", got, err)
	}
	if got, _ := h.Lookup(ctx, KeyEmail, "u49@example.com"); len(got) != 0 {
		t.Fatal("the failed item was written")
	}
	items, _, err := h.Timeline(ctx, res[0].ID, 50, "")
	if err != nil || len(items) != 2 || items[0].Type != ItemUpdated || items[1].Type != ItemCreated {
		t.Fatalf("timeline of an updated contact: %+v %v", items, err)
	}
}

// TestStaleClaimIsTakenOver: a crash between claiming a value and writing
// the contact leaves a lookup entry pointing nowhere; it finds nothing and
// the next contact to want the value gets it.
func TestStaleClaimIsTakenOver(t *testing.T) {
	h := testHandle(t)
	ctx := t.Context()
	name := lookupName(KeyEmail, h.index(KeyEmail, "ghost@example.com"))
	// A claimer that died two minutes ago, before writing its contact.
	if _, err := h.lookupChain().Take(ctx, name, 1, lookupDoc{ContactID: "never-written", Version: 1, At: h.nowMs().Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Lookup(ctx, KeyEmail, "ghost@example.com"); err != nil || len(got) != 0 {
		t.Fatalf("stale lookup found %v (%v)", got, err)
	}
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: Field[string]{Set: true, Value: "ghost@example.com"}}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("Add over a stale claim: %+v %v", res, err)
	}
	g, err := h.lookupChain().Head(ctx, name)
	if err != nil || g.N != 2 || g.Body.ContactID != res[0].ID {
		t.Fatalf("claim not taken over: %+v %v", g, err)
	}
	if got, err := h.Lookup(ctx, KeyEmail, "ghost@example.com"); err != nil || len(got) != 1 || got[0].ID != res[0].ID {
		t.Fatalf("lookup after the take-over: %v (%v)", got, err)
	}

	// A claim being written right now (young, its contact not there yet)
	// holds the value: Add is a duplicate, not a second contact.
	young := lookupName(KeyEmail, h.index(KeyEmail, "busy@example.com"))
	if _, err := h.lookupChain().Take(ctx, young, 1, lookupDoc{ContactID: "in-flight", Version: 1, At: h.nowMs()}); err != nil {
		t.Fatal(err)
	}
	res, err = h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: Field[string]{Set: true, Value: "busy@example.com"}}})
	if err != nil || res[0].Outcome != "failed" || res[0].Code != CodeDuplicate {
		t.Fatalf("Add over a pending claim: %+v %v", res, err)
	}
}

// TestPendingTimelineSurvivesACrash: items written with a contact reach the
// timeline on the next read even if the copy never happened.
func TestPendingTimelineSurvivesACrash(t *testing.T) {
	db := storetest.MustOpen(t)
	h := openHandle(t, db)
	ctx := t.Context()
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: Field[string]{Set: true, Value: "p@example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	// Simulate the crash: the timeline collection lost the copy.
	if _, err := h.timeline().DeleteRange(ctx, timelineOf(id)); err != nil {
		t.Fatal(err)
	}
	restarted := openHandle(t, db)
	items, _, err := restarted.Timeline(ctx, id, 10, "")
	if err != nil || len(items) != 1 || items[0].Type != ItemCreated {
		t.Fatalf("timeline after the crash: %+v %v", items, err)
	}
}

// TestDeleteLeavesNothingOfThePerson: after a hard delete no claim of the
// contact still holds its sealed data, and its values are free at once.
func TestDeleteLeavesNothingOfThePerson(t *testing.T) {
	h := testHandle(t)
	ctx := t.Context()
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: Field[string]{Set: true, Value: "gone@example.com"}, FirstName: Field[string]{Set: true, Value: "Gone"}}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("%+v %v", res, err)
	}
	id := res[0].ID
	if _, err := h.Patch(ctx, id, 0, Input{FirstName: Field[string]{Set: true, Value: "Still"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	for n := int64(1); n <= 3; n++ {
		c, err := h.contactDocs().Claim(ctx, id, n)
		if err != nil || len(c.State.Sealed) != 0 || len(c.State.Idx) != 0 {
			t.Fatalf("claim %d after delete: %+v %v", n, c, err)
		}
	}
	if _, err := h.Get(ctx, id); err != ErrNotFound {
		t.Fatalf("get after delete: %v", err)
	}
	res, err = h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: Field[string]{Set: true, Value: "gone@example.com"}}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("the email after delete: %+v %v", res, err)
	}
}
