package contacts

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

// reviewHandle opens the test customer with a clock that runs hook (once
// armed) when store.Versioned.Update asks for the time of its claim: after
// change() has claimed its unique values and before the version is claimed.
func reviewHandle(t *testing.T, db *store.DB, hook *atomic.Pointer[func()]) *Handle {
	t.Helper()
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-00000000000c", "k1", bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time {
		if f := hook.Load(); f != nil {
			pc := make([]uintptr, 8)
			n := runtime.Callers(2, pc)
			frames := runtime.CallersFrames(pc[:n])
			fr1, _ := frames.Next()
			fr2, _ := frames.Next()
			if strings.Contains(fr1.Function, "Versioned[...]).now") && strings.Contains(fr2.Function, "Versioned[...]).Update") {
				if hook.CompareAndSwap(f, nil) {
					(*f)()
				}
			}
		}
		return time.Now()
	}
	s := &Service{Cipher: func(context.Context, string) (*crypto.Cipher, error) { return c, nil }, Tenant: db.Tenant, Now: now}
	h, err := s.Open(t.Context(), "0193a0c4-1111-7000-8000-00000000000c")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestReclaimOwnOldEntryDuplicates: a contact that takes back a value
// it held before finds its own old lookup entry and claims nothing new
// (claim's "mine" shortcut); that old entry is judged free by everyone
// else, so a concurrent create takes the next generation and both contacts
// end up holding the same email.
func TestReclaimOwnOldEntryDuplicates(t *testing.T) {
	db := storetest.MustOpen(t)
	var hook atomic.Pointer[func()]
	hA := reviewHandle(t, db, &hook)
	hC := openHandle(t, db)
	ctx := t.Context()
	x, y := "dup-x@example.com", "dup-y@example.com"

	res, err := hA.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set(x)}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("create A: %+v %v", res, err)
	}
	a := res[0].ID
	if _, err := hA.Patch(ctx, a, store.AnyVersion, Input{Email: set(y)}); err != nil {
		t.Fatalf("A to y: %v", err)
	}

	var cRes []Result
	var cErr error
	f := func() { cRes, cErr = hC.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set(x)}}) }
	hook.Store(&f)
	_, aErr := hA.Patch(ctx, a, store.AnyVersion, Input{Email: set(x)})
	if cErr != nil {
		t.Fatalf("C: %v", cErr)
	}
	t.Logf("A back to x: err=%v; C: %+v", aErr, cRes)
	if got := holders(t, hC, KeyEmail, x); len(got) > 1 {
		t.Fatalf("email %s is held by %d contacts: %v", x, len(got), got)
	}
}

// TestAnonymizeKeepsHistoryAndCanBeBlocked: (1) every earlier version
// of an anonymized contact stays in contact_claims, sealed but whole: its
// name, email and phone are still in the database and open with the
// customer's key; (2) a contact holding the placeholder email
// "anonymized-<id>@example.invalid" makes the anonymization fail with the
// unexported errConflict (a 500 at the API), for as long as it holds it.
func TestAnonymizeKeepsHistoryAndCanBeBlocked(t *testing.T) {
	db := storetest.MustOpen(t)
	h := openHandle(t, db)
	ctx := t.Context()
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set("anon-victim@example.com"), FirstName: set("Secretname"), Phone: set("+16502530001")}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("%+v %v", res, err)
	}
	id := res[0].ID
	if _, err := h.Anonymize(ctx, id); err != nil {
		t.Fatal(err)
	}
	cl, err := h.contactDocs().Claim(ctx, id, 1)
	if err != nil {
		t.Fatalf("claim 1: %v", err)
	}
	p, err := h.open(&cl.State)
	if err != nil {
		t.Fatal(err)
	}
	if p.FirstName != nil && *p.FirstName == "Secretname" {
		t.Errorf("after Anonymize, contact_claims %s:1 still holds firstName %q, email %v, phone %v", id, *p.FirstName, *p.Email, *p.Phone)
	}

	res, err = h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set("anon-victim2@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	v := res[0].ID
	// The placeholder domain is refused as input (.invalid is never a real
	// address), so nobody can squat it.
	var verr *switchboard.ValidationError
	if _, err = h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set("anonymized-" + v + "@example.invalid")}}); !errors.As(err, &verr) {
		t.Fatalf("squatter accepted: %v", err)
	}
	if _, err := h.Anonymize(ctx, v); err != nil {
		t.Errorf("Anonymize of %s with its placeholder email taken: %v (ErrUniqueConflict? %v)", v, err, err == ErrUniqueConflict)
	}
}

// TestCrashedChangeLandsAfterItsEntryExpired: a change claimed email
// x (lookup entry) and its version (contact_claims), then the process died
// before replacing the document. judge reads the cached document (Get, no
// settle), so after pendingFor the entry is free and another contact takes
// x; the next write of the first contact applies the stranded claim, and
// both hold x.
func TestCrashedChangeLandsAfterItsEntryExpired(t *testing.T) {
	db := storetest.MustOpen(t)
	h := openHandle(t, db)
	ctx := t.Context()
	x := "stranded@example.com"
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set("first@example.com")}})
	if err != nil || res[0].Outcome != "created" {
		t.Fatalf("%+v %v", res, err)
	}
	a := res[0].ID

	// The dead change, two minutes ago: entry, then claim of version 2.
	cur, err := h.contactDocs().Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := h.open(cur)
	next, _, _ := merge(p, Input{Email: set(x)}, h.nowMs())
	state, err := h.build(a, cur, next, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.lookupChain().Take(ctx, lookupName(KeyEmail, h.index(KeyEmail, x)), 1, lookupDoc{ContactID: a, Version: 2, At: h.nowMs().Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	cl := store.Claim[contactDoc, struct{}]{ID: store.ClaimID(a, 2), DocID: a, Version: 2, At: h.nowMs().Add(-2 * time.Minute), State: *state}
	if err := h.contactDocs().Claims.InsertOne(ctx, cl); err != nil {
		t.Fatal(err)
	}

	h2 := openHandle(t, db)
	res, err = h2.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set(x)}})
	t.Logf("C with x: %+v %v", res, err)
	if _, err := h2.Patch(ctx, a, store.AnyVersion, Input{FirstName: set("Later")}); err != nil {
		t.Fatal(err)
	}
	if got := holders(t, h2, KeyEmail, x); len(got) > 1 {
		t.Fatalf("email %s is held by %d contacts: %v", x, len(got), got)
	}
}

// TestRefusedPatchBlocksItsOtherValues: a patch refused with a unique
// conflict on its phone has already claimed its new email; that entry is
// "pending" for a minute, so for that minute nobody can take the email
// (an Add waits 5 s and fails with conflict), though the patch changed
// nothing.
func TestRefusedPatchBlocksItsOtherValues(t *testing.T) {
	db := storetest.MustOpen(t)
	h := openHandle(t, db)
	ctx := t.Context()
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, []Input{
		{Email: set("pa@example.com")},
		{Email: set("pb@example.com"), Phone: set("+16502530002")},
	})
	if err != nil || res[0].Outcome != "created" || res[1].Outcome != "created" {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = h.Patch(ctx, res[0].ID, store.AnyVersion, Input{Email: set("wanted@example.com"), Phone: set("+16502530002")})
	if err != ErrUniqueConflict {
		t.Fatalf("patch: %v, want ErrUniqueConflict", err)
	}
	res, err = h.Upsert(ctx, ModeAdd, KeyEmail, []Input{{Email: set("wanted@example.com")}})
	if err != nil || res[0].Outcome != "created" {
		t.Errorf("Add of an email nobody holds, after a refused patch: %+v %v", res, err)
	}
}
