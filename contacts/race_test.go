package contacts

import (
	"github.com/switchboard/switchboard/internal/racing"

	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"

	"github.com/switchboard/switchboard"
)

// Concurrency tests of the contacts write pipeline: many changes released at
// once, each on its own Handle (its own Service, as a separate process would
// have), against the one embedded engine. Every race must be decided by a
// claim (an insert with a unique _id): the assertions count outcomes exactly.

const (
	raceN      = 24 // goroutines per race
	raceRounds = 5  // rounds per (sub)test, fresh values each
)

// raceHandles opens n handles on db, each through its own Service.
func raceHandles(t *testing.T, db *store.DB, n int) []*Handle {
	t.Helper()
	hs := make([]*Handle, n)
	for i := range hs {
		hs[i] = openHandle(t, db)
	}
	return hs
}

func set(v string) Field[string] { return Field[string]{Set: true, Value: v} }

// raceName is a valid, distinct first name (letters only) for goroutine i of
// round r.
func raceName(r, i int) string {
	return fmt.Sprintf("Racer %c%c", 'A'+rune(r%26), 'A'+rune(i%26))
}

// racePhone is a valid E.164 number, distinct per (test, round, goroutine).
func racePhone(t *testing.T, k int) string {
	t.Helper()
	p, ok := switchboard.NormalizePhone(fmt.Sprintf("+1650253%04d", k%10000), "")
	if !ok {
		t.Fatalf("test phone %d is not valid", k)
	}
	return p
}

// setKey sets the unique field kind of in to v.
func setKey(in *Input, kind, v string) {
	switch kind {
	case KeyEmail:
		in.Email = set(v)
	case KeyPhone:
		in.Phone = set(v)
	case KeyCrmID:
		in.CrmID = set(v)
	case KeyExternalID:
		in.ExternalID = set(v)
	default:
		panic(kind)
	}
}

// keyOf is the unique field kind of c.
func keyOf(c Contact, kind string) *string {
	switch kind {
	case KeyEmail:
		return c.Email
	case KeyPhone:
		return c.Phone
	case KeyCrmID:
		return c.CrmID
	case KeyExternalID:
		return c.ExternalID
	}
	panic(kind)
}

// holders lists (through List, not the lookup entries) the ids of every
// contact whose field kind equals v.
func holders(t *testing.T, h *Handle, kind, v string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		page, next, err := h.List(t.Context(), 500, cursor)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, c := range page {
			if k := keyOf(c, kind); k != nil && *k == v {
				ids = append(ids, c.ID)
			}
		}
		if next == "" {
			return ids
		}
		cursor = next
	}
}

// timelineTypes counts the item types of a contact's whole timeline.
func timelineTypes(t *testing.T, h *Handle, id string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	cursor := ""
	for {
		items, next, err := h.Timeline(t.Context(), id, 100, cursor)
		if err != nil {
			t.Fatalf("timeline of %s: %v", id, err)
		}
		for _, it := range items {
			counts[it.Type]++
		}
		if next == "" {
			return counts
		}
		cursor = next
	}
}

// outcomes tallies results as "created", "updated", "failed/<code>", and
// "error: ..." for a call that returned an error or not one result.
func outcomes(res [][]Result, errs []error) map[string]int {
	m := map[string]int{}
	for i := range res {
		switch {
		case errs[i] != nil:
			m["error: "+errs[i].Error()]++
		case len(res[i]) != 1:
			m[fmt.Sprintf("%d results", len(res[i]))]++
		case res[i][0].Outcome == "failed":
			m["failed/"+res[i][0].Code]++
		default:
			m[res[i][0].Outcome]++
		}
	}
	return m
}

func fmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// upsertRace runs raceN single-item upserts, item(i) on hs[i], at once.
func upsertRace(t *testing.T, hs []*Handle, mode, matchBy string, item func(i int) Input) ([][]Result, []error) {
	res := make([][]Result, raceN)
	errs := make([]error, raceN)
	racing.Release(raceN, func(i int) {
		res[i], errs[i] = hs[i].Upsert(t.Context(), mode, matchBy, []Input{item(i)})
	})
	return res, errs
}

// createdOne checks exactly one created and raceN-1 failed with code, and
// returns the created contact's id.
func createdOne(t *testing.T, round int, res [][]Result, errs []error, code string) (string, bool) {
	t.Helper()
	got := outcomes(res, errs)
	if got["created"] != 1 || got["failed/"+code] != raceN-1 {
		t.Errorf("round %d: outcomes %s; want created=1 failed/%s=%d", round, fmtCounts(got), code, raceN-1)
		return "", false
	}
	for i := range res {
		if res[i][0].Outcome == "created" {
			if res[i][0].ID == "" {
				t.Errorf("round %d: created without an id", round)
				return "", false
			}
			return res[i][0].ID, true
		}
	}
	return "", false
}

// afterFailure describes, for a round whose outcomes were wrong, the
// contacts that hold the value anyway (with their versions), so a report
// tells whether the error hid a write that happened.
func afterFailure(t *testing.T, h *Handle, round int, kind, v string) {
	t.Helper()
	ids := holders(t, h, kind, v)
	desc := make([]string, len(ids))
	for i, id := range ids {
		c, err := h.Get(t.Context(), id)
		desc[i] = fmt.Sprintf("%s@v%d(%v)", id, c.Version, err)
	}
	got, err := h.Lookup(t.Context(), kind, v)
	t.Errorf("round %d: after it, %d contacts hold %s %s: %v; Lookup finds %d (%v)", round, len(ids), kind, v, desc, len(got), err)
}

// TestRaceAddOneUniqueValue: raceN Adds of one new unique value at once
// create exactly one contact; the others are duplicates. And raceN Adds of
// distinct emails that share one phone create exactly one contact; the
// others fail with conflict.
func TestRaceAddOneUniqueValue(t *testing.T) {
	db := storetest.MustOpen(t)
	hs := raceHandles(t, db, raceN)
	check := hs[0]
	ctx := t.Context()

	for k, kind := range lookupKinds {
		t.Run(kind, func(t *testing.T) {
			for round := range raceRounds {
				var v string
				switch kind {
				case KeyEmail:
					v = fmt.Sprintf("one-%d@example.com", round)
				case KeyPhone:
					v = racePhone(t, 1000*k+round)
				default:
					v = fmt.Sprintf("%s-one-%d", kind, round)
				}
				res, errs := upsertRace(t, hs, ModeAdd, kind, func(i int) Input {
					in := Input{FirstName: set(raceName(round, i))}
					setKey(&in, kind, v)
					return in
				})
				id, ok := createdOne(t, round, res, errs, CodeDuplicate)
				if !ok {
					afterFailure(t, check, round, kind, v)
					continue
				}
				got, err := check.Lookup(ctx, kind, v)
				if err != nil || len(got) != 1 || got[0].ID != id {
					t.Errorf("round %d: lookup %s %s: %d contacts %v (%v), want %s", round, kind, v, len(got), got, err, id)
				}
				if ids := holders(t, check, kind, v); len(ids) != 1 || ids[0] != id {
					t.Errorf("round %d: contacts holding %s %s: %v, want [%s]", round, kind, v, ids, id)
				}
			}
		})
	}

	t.Run("samePhoneDistinctEmails", func(t *testing.T) {
		for round := range raceRounds {
			phone := racePhone(t, 9000+round)
			res, errs := upsertRace(t, hs, ModeAdd, KeyEmail, func(i int) Input {
				return Input{Email: set(fmt.Sprintf("shared-phone-%d-%d@example.com", round, i)), Phone: set(phone), FirstName: set(raceName(round, i))}
			})
			id, ok := createdOne(t, round, res, errs, CodeConflict)
			if !ok {
				afterFailure(t, check, round, KeyPhone, phone)
				continue
			}
			got, err := check.Lookup(ctx, KeyPhone, phone)
			if err != nil || len(got) != 1 || got[0].ID != id {
				t.Errorf("round %d: lookup phone %s: %d contacts %v (%v), want %s", round, phone, len(got), got, err, id)
			}
			if ids := holders(t, check, KeyPhone, phone); len(ids) != 1 || ids[0] != id {
				t.Errorf("round %d: contacts holding phone %s: %v, want [%s]", round, phone, ids, id)
			}
			// The losers gave their emails back: none of them was written.
			for i := range raceN {
				e := fmt.Sprintf("shared-phone-%d-%d@example.com", round, i)
				ids := holders(t, check, KeyEmail, e)
				if res[i][0].Outcome == "created" {
					if len(ids) != 1 {
						t.Errorf("round %d: winner's email %s held by %v", round, e, ids)
					}
				} else if len(ids) != 0 {
					t.Errorf("round %d: a loser's email %s was written: %v", round, e, ids)
				}
			}
		}
	})
}

// TestRaceAddOverStaleClaim: a value whose only lookup entry is a dead
// claimer's (two minutes old, its contact never written) is taken over by
// exactly one of raceN Adds.
func TestRaceAddOverStaleClaim(t *testing.T) {
	db := storetest.MustOpen(t)
	hs := raceHandles(t, db, raceN)
	check := hs[0]
	ctx := t.Context()
	for round := range raceRounds {
		v := fmt.Sprintf("stale-%d@example.com", round)
		name := lookupName(KeyEmail, check.index(KeyEmail, v))
		if _, err := check.lookupChain().Take(ctx, name, 1, lookupDoc{ContactID: "never-written", Version: 1, At: check.nowMs().Add(-2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		res, errs := upsertRace(t, hs, ModeAdd, KeyEmail, func(i int) Input {
			return Input{Email: set(v), FirstName: set(raceName(round, i))}
		})
		id, ok := createdOne(t, round, res, errs, CodeDuplicate)
		if !ok {
			afterFailure(t, check, round, KeyEmail, v)
			continue
		}
		got, err := check.Lookup(ctx, KeyEmail, v)
		if err != nil || len(got) != 1 || got[0].ID != id {
			t.Errorf("round %d: lookup %s: %d contacts %v (%v), want %s", round, v, len(got), got, err, id)
		}
		if ids := holders(t, check, KeyEmail, v); len(ids) != 1 || ids[0] != id {
			t.Errorf("round %d: contacts holding %s: %v, want [%s]", round, v, ids, id)
		}
		if g, err := check.lookupChain().Head(ctx, name); err != nil || g.N != 2 || g.Body.ContactID != id {
			t.Errorf("round %d: head entry of %s: %+v (%v), want generation 2 of %s", round, v, g, err, id)
		}
	}
}

// TestRaceAddOrUpdateSameNewEmail: raceN AddOrUpdates of one new email at
// once create it once and update it raceN-1 times.
func TestRaceAddOrUpdateSameNewEmail(t *testing.T) {
	db := storetest.MustOpen(t)
	hs := raceHandles(t, db, raceN)
	check := hs[0]
	ctx := t.Context()
	for round := range raceRounds {
		v := fmt.Sprintf("aou-%d@example.com", round)
		names := map[string]bool{}
		for i := range raceN {
			names[raceName(round, i)] = true
		}
		res, errs := upsertRace(t, hs, ModeAddOrUpdate, KeyEmail, func(i int) Input {
			return Input{Email: set(v), FirstName: set(raceName(round, i))}
		})
		got := outcomes(res, errs)
		if got["created"] != 1 || got["updated"] != raceN-1 {
			t.Errorf("round %d: outcomes %s; want created=1 updated=%d", round, fmtCounts(got), raceN-1)
			afterFailure(t, check, round, KeyEmail, v)
			continue
		}
		id := res[0][0].ID
		for i := range res {
			if res[i][0].ID != id || id == "" {
				t.Errorf("round %d: item %d has id %q, item 0 %q", round, i, res[i][0].ID, id)
			}
		}
		c, err := check.Get(ctx, id)
		if err != nil || c.Version != raceN {
			t.Errorf("round %d: contact %s at version %d (%v), want %d", round, id, c.Version, err, raceN)
		}
		if err == nil && (c.FirstName == nil || !names[*c.FirstName] || c.Email == nil || *c.Email != v) {
			t.Errorf("round %d: stored contact %+v", round, c)
		}
		types := timelineTypes(t, check, id)
		if types[ItemCreated] != 1 || types[ItemUpdated] != raceN-1 || len(types) != 2 {
			t.Errorf("round %d: timeline %s; want %s=1 %s=%d", round, fmtCounts(types), ItemCreated, ItemUpdated, raceN-1)
		}
		if ids := holders(t, check, KeyEmail, v); len(ids) != 1 || ids[0] != id {
			t.Errorf("round %d: contacts holding %s: %v, want [%s]", round, v, ids, id)
		}
	}
}

// raceContact creates one contact at version 1 and returns its id.
func raceContact(t *testing.T, h *Handle, emailValue string) string {
	t.Helper()
	res, err := h.Upsert(t.Context(), ModeAdd, KeyEmail, []Input{{Email: set(emailValue), FirstName: set("Original")}})
	if err != nil || len(res) != 1 || res[0].Outcome != "created" {
		t.Fatalf("create %s: %+v %v", emailValue, res, err)
	}
	return res[0].ID
}

// TestRacePatchSameExpectedVersion: of raceN patches expecting version 1,
// exactly one wins; the others get a conflict naming version 2.
func TestRacePatchSameExpectedVersion(t *testing.T) {
	db := storetest.MustOpen(t)
	hs := raceHandles(t, db, raceN)
	check := hs[0]
	ctx := t.Context()
	for round := range raceRounds {
		id := raceContact(t, check, fmt.Sprintf("patch1-%d@example.com", round))
		cs := make([]Contact, raceN)
		errs := make([]error, raceN)
		racing.Release(raceN, func(i int) {
			cs[i], errs[i] = hs[i].Patch(ctx, id, 1, Input{FirstName: set(raceName(round, i))})
		})
		won, conflicts := -1, 0
		other := map[string]int{}
		for i := range raceN {
			var vce *switchboard.VersionConflictError
			switch {
			case errs[i] == nil && cs[i].Version == 2:
				if won >= 0 {
					other["second success"]++
				}
				won = i
			case errs[i] == nil:
				other[fmt.Sprintf("success at version %d", cs[i].Version)]++
			case errors.As(errs[i], &vce) && vce.Current == 2 && errors.Is(errs[i], switchboard.ErrVersionConflict):
				conflicts++
			default:
				other["error: "+errs[i].Error()]++
			}
		}
		if won < 0 || conflicts != raceN-1 || len(other) > 0 {
			t.Errorf("round %d: winner %d, conflicts(current 2)=%d, other: %s; want one success at version 2 and %d conflicts",
				round, won, conflicts, fmtCounts(other), raceN-1)
			continue
		}
		c, err := check.Get(ctx, id)
		if err != nil || c.Version != 2 || c.FirstName == nil || *c.FirstName != raceName(round, won) {
			t.Errorf("round %d: stored %+v (%v), want version 2 with the winner's firstName %q", round, c, err, raceName(round, won))
		}
		types := timelineTypes(t, check, id)
		if types[ItemCreated] != 1 || types[ItemUpdated] != 1 || len(types) != 2 {
			t.Errorf("round %d: timeline %s; want %s=1 %s=1", round, fmtCounts(types), ItemCreated, ItemUpdated)
		}
	}
}

// TestRacePatchAnyVersion: raceN patches of any version at once all land,
// each on its own version.
func TestRacePatchAnyVersion(t *testing.T) {
	db := storetest.MustOpen(t)
	hs := raceHandles(t, db, raceN)
	check := hs[0]
	ctx := t.Context()
	for round := range raceRounds {
		id := raceContact(t, check, fmt.Sprintf("patchany-%d@example.com", round))
		cs := make([]Contact, raceN)
		errs := make([]error, raceN)
		racing.Release(raceN, func(i int) {
			cs[i], errs[i] = hs[i].Patch(ctx, id, store.AnyVersion, Input{FirstName: set(raceName(round, i))})
		})
		versions := map[int64]int{}
		failed := map[string]int{}
		last := -1
		for i := range raceN {
			if errs[i] != nil {
				failed[errs[i].Error()]++
				continue
			}
			versions[cs[i].Version]++
			if cs[i].Version == raceN+1 {
				last = i
			}
			if cs[i].FirstName == nil || *cs[i].FirstName != raceName(round, i) {
				t.Errorf("round %d: patch %d answered firstName %v", round, i, cs[i].FirstName)
			}
		}
		if len(failed) > 0 || len(versions) != raceN || last < 0 {
			t.Errorf("round %d: failed: %s; %d distinct versions %v; want %d distinct versions 2..%d",
				round, fmtCounts(failed), len(versions), versions, raceN, raceN+1)
			continue
		}
		for v := int64(2); v <= raceN+1; v++ {
			if versions[v] != 1 {
				t.Errorf("round %d: version %d returned %d times", round, v, versions[v])
			}
		}
		c, err := check.Get(ctx, id)
		if err != nil || c.Version != raceN+1 || c.FirstName == nil || *c.FirstName != raceName(round, last) {
			t.Errorf("round %d: stored %+v (%v), want version %d with firstName %q", round, c, err, raceN+1, raceName(round, last))
		}
		types := timelineTypes(t, check, id)
		if types[ItemCreated] != 1 || types[ItemUpdated] != raceN || len(types) != 2 {
			t.Errorf("round %d: timeline %s; want %s=1 %s=%d", round, fmtCounts(types), ItemCreated, ItemUpdated, raceN)
		}
	}
}

// TestCrashBetweenClaimAndApply: a change whose claim of version 2 was
// inserted but whose replace of the document never happened (the process
// was killed in between) leaves nothing stuck: readers see a consistent
// contact, a writer expecting 1 learns of version 2, one expecting 2 goes
// on to 3, and the killed change's timeline item is not lost.
func TestCrashBetweenClaimAndApply(t *testing.T) {
	db := storetest.MustOpen(t)
	h := openHandle(t, db)
	ctx := t.Context()
	v := "crash@example.com"
	id := raceContact(t, h, v)

	// What the killed process had computed: version 2 with a new firstName
	// and its timeline item, as change() builds it.
	cur, err := h.contactDocs().Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.open(cur)
	if err != nil {
		t.Fatal(err)
	}
	next, changed, _ := merge(p, Input{FirstName: set("Killed")}, h.nowMs())
	items, err := h.items(id, ItemUpdated, changed, nil, h.nowMs())
	if err != nil {
		t.Fatal(err)
	}
	state, err := h.build(id, cur, next, cur.Country, cur.Anonymized, items)
	if err != nil {
		t.Fatal(err)
	}
	if state.Version != 2 {
		t.Fatalf("built version %d", state.Version)
	}
	claim := store.Claim[contactDoc, struct{}]{ID: store.ClaimID(id, 2), DocID: id, Version: 2, At: h.nowMs(), State: *state}
	if err := h.contactDocs().Claims.InsertOne(ctx, claim); err != nil {
		t.Fatal(err)
	}

	// Another process, started after the crash.
	h2 := openHandle(t, db)
	c, err := h2.Get(ctx, id)
	if err != nil || c.Version != 1 || c.FirstName == nil || *c.FirstName != "Original" {
		t.Fatalf("Get after the crash: %+v (%v), want version 1 with firstName Original", c, err)
	}
	if got, err := h2.Lookup(ctx, KeyEmail, v); err != nil || len(got) != 1 || got[0].ID != id {
		t.Fatalf("Lookup after the crash: %+v (%v)", got, err)
	}

	_, err = h2.Patch(ctx, id, 1, Input{FirstName: set("Stale")})
	var vce *switchboard.VersionConflictError
	if !errors.As(err, &vce) || vce.Current != 2 || !errors.Is(err, switchboard.ErrVersionConflict) {
		t.Fatalf("Patch expecting 1: %v, want a version conflict naming 2", err)
	}
	c, err = h2.Get(ctx, id)
	if err != nil || c.Version != 2 || c.FirstName == nil || *c.FirstName != "Killed" {
		t.Fatalf("Get after the conflict: %+v (%v), want the claimed version 2", c, err)
	}

	c, err = h2.Patch(ctx, id, 2, Input{FirstName: set("Third")})
	if err != nil || c.Version != 3 || c.FirstName == nil || *c.FirstName != "Third" {
		t.Fatalf("Patch expecting 2: %+v (%v), want version 3", c, err)
	}

	// Nothing stuck: the document, a further change, the timeline.
	h3 := openHandle(t, db)
	c, err = h3.Get(ctx, id)
	if err != nil || c.Version != 3 || *c.FirstName != "Third" {
		t.Fatalf("Get after version 3: %+v (%v)", c, err)
	}
	c, err = h3.Patch(ctx, id, store.AnyVersion, Input{LastName: set("Fourth")})
	if err != nil || c.Version != 4 {
		t.Fatalf("Patch of any version after the crash: %+v (%v), want version 4", c, err)
	}
	types := timelineTypes(t, h3, id)
	if types[ItemCreated] != 1 || types[ItemUpdated] != 3 || len(types) != 2 {
		t.Fatalf("timeline %s; want %s=1 %s=3 (the killed change's item included)", fmtCounts(types), ItemCreated, ItemUpdated)
	}
	if got, err := h3.Lookup(ctx, KeyEmail, v); err != nil || len(got) != 1 || got[0].ID != id || got[0].Version != 4 {
		t.Fatalf("Lookup at the end: %+v (%v)", got, err)
	}
}
