package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

type counter struct {
	ID      string   `bson:"_id"`
	Version int64    `bson:"version"`
	Applied []string `bson:"applied"` // who changed it, in order
}

type note struct {
	By string `bson:"by"`
}

func newCounters(t *testing.T) *store.Versioned[counter, note] {
	db := storetest.MustOpen(t)
	// A customer's collections, as most versioned documents are.
	tn := db.Tenant("0190a1b2-0000-7000-8000-0000000000e1")
	return &store.Versioned[counter, note]{
		Docs:    tn.Collection("contacts"),
		Claims:  tn.Collection("contact_claims"),
		Gates:   nil,
		Version: func(c *counter) int64 { return c.Version },
	}
}

func newGatedCounters(t *testing.T) *store.Versioned[counter, note] {
	db := storetest.MustOpen(t)
	return &store.Versioned[counter, note]{
		Docs:    store.Plain(db.Control.Collection("counters")),
		Claims:  store.Plain(db.Control.Collection("counter_claims")),
		Gates:   store.Plain(db.Control.Collection("locks")),
		Version: func(c *counter) int64 { return c.Version },
	}
}

func bump(by string) store.Change[counter, note] {
	return func(cur *counter) (*counter, note, error) {
		n := *cur
		n.Version++
		n.Applied = append(append([]string(nil), cur.Applied...), by)
		return &n, note{By: by}, nil
	}
}

// race runs f from n goroutines released at once.
func race(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

const racers = 24

func TestUpdateSameExpectedVersionHasOneWinner(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	for round := range 10 {
		id := fmt.Sprintf("c%d", round)
		if err := v.Create(ctx, id, &counter{ID: id, Version: 1}, note{By: "create"}); err != nil {
			t.Fatal(err)
		}
		var won, conflicts atomic.Int32
		race(racers, func(i int) {
			_, err := v.Update(ctx, id, 1, bump(fmt.Sprint(i)), store.UpdateOptions[counter]{})
			var ce *store.ConflictError
			switch {
			case err == nil:
				won.Add(1)
			case errors.As(err, &ce) && ce.Current == 2:
				conflicts.Add(1)
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		})
		if won.Load() != 1 || conflicts.Load() != racers-1 {
			t.Fatalf("round %d: %d won, %d conflicts; want 1 and %d", round, won.Load(), conflicts.Load(), racers-1)
		}
		got, err := v.Latest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Claim(ctx, id, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 2 || len(got.Applied) != 1 || got.Applied[0] != c.Event.By {
			t.Fatalf("round %d: stored %+v, claim by %q", round, got, c.Event.By)
		}
	}
}

func TestUpdateAnyVersionLosesNothing(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	for round := range 5 {
		id := fmt.Sprintf("c%d", round)
		if err := v.Create(ctx, id, &counter{ID: id, Version: 1}, note{}); err != nil {
			t.Fatal(err)
		}
		versions := make([]int64, racers)
		race(racers, func(i int) {
			got, err := v.Update(ctx, id, store.AnyVersion, bump(fmt.Sprint(i)), store.UpdateOptions[counter]{})
			if err != nil {
				t.Errorf("racer %d: %v", i, err)
				return
			}
			versions[i] = got.Version
		})
		seen := map[int64]bool{}
		for _, ver := range versions {
			if seen[ver] || ver < 2 || ver > racers+1 {
				t.Fatalf("round %d: versions answered %v: want %d distinct, 2..%d", round, versions, racers, racers+1)
			}
			seen[ver] = true
		}
		got, err := v.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != racers+1 || len(got.Applied) != racers {
			t.Fatalf("round %d: ended at version %d with %d changes; want %d and %d", round, got.Version, len(got.Applied), racers+1, racers)
		}
	}
}

func TestGatedUpdateRunsOneSideEffect(t *testing.T) {
	v := newGatedCounters(t)
	ctx := t.Context()
	for round := range 10 {
		id := fmt.Sprintf("g%d", round)
		if err := v.Create(ctx, id, &counter{ID: id, Version: 1}, note{}); err != nil {
			t.Fatal(err)
		}
		var effects, won atomic.Int32
		race(racers, func(i int) {
			_, err := v.Update(ctx, id, 1, func(cur *counter) (*counter, note, error) {
				effects.Add(1)
				time.Sleep(2 * time.Millisecond) // a Twilio call
				return bump(fmt.Sprint(i))(cur)
			}, store.UpdateOptions[counter]{})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		})
		if won.Load() != 1 || effects.Load() != 1 {
			t.Fatalf("round %d: %d won, %d side effects; want 1 and 1", round, won.Load(), effects.Load())
		}
	}
}

func TestGatedUpdateFailureReleasesTheGate(t *testing.T) {
	v := newGatedCounters(t)
	ctx := t.Context()
	if err := v.Create(ctx, "x", &counter{ID: "x", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("twilio down")
	_, err := v.Update(ctx, "x", 1, func(*counter) (*counter, note, error) { return nil, note{}, boom }, store.UpdateOptions[counter]{})
	if !errors.Is(err, boom) {
		t.Fatalf("failing change: %v", err)
	}
	got, err := v.Update(ctx, "x", 1, bump("retry"), store.UpdateOptions[counter]{})
	if err != nil || got.Version != 2 {
		t.Fatalf("retry after a failure: %+v, %v", got, err)
	}
	// The gate of version 2 stays taken after the win; the next change
	// gates version 3 and runs.
	ran := false
	_, err = v.Update(ctx, "x", store.AnyVersion, func(cur *counter) (*counter, note, error) {
		ran = true
		return bump("any")(cur)
	}, store.UpdateOptions[counter]{})
	if err != nil || !ran {
		t.Fatalf("any-version gated update after a win: ran %v, %v", ran, err)
	}
}

func TestCrashBetweenClaimAndApply(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	if err := v.Create(ctx, "k", &counter{ID: "k", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}
	// A process claimed version 2 and died before replacing the document.
	lost := store.Claim[counter, note]{ID: store.ClaimID("k", 2), DocID: "k", Version: 2, At: time.Now().UTC(),
		State: counter{ID: "k", Version: 2, Applied: []string{"dead"}}, Event: note{By: "dead"}}
	if err := v.Claims.InsertOne(ctx, lost); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "k")
	if err != nil || got.Version != 1 {
		t.Fatalf("cached read after the crash: %+v, %v (the old state, whole)", got, err)
	}
	latest, err := v.Latest(ctx, "k")
	if err != nil || latest.Version != 2 || latest.Applied[0] != "dead" {
		t.Fatalf("settled read: %+v, %v", latest, err)
	}
	// A writer with the version it read before settling is told the truth...
	if _, err := v.Update(ctx, "k", 1, bump("late"), store.UpdateOptions[counter]{}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale writer: %v", err)
	}
	// ...and the next write goes through on top of the rolled-forward claim.
	got, err = v.Update(ctx, "k", 2, bump("next"), store.UpdateOptions[counter]{})
	if err != nil || got.Version != 3 || len(got.Applied) != 2 {
		t.Fatalf("next write: %+v, %v", got, err)
	}

	// A first claim whose document was never inserted: the next read creates it.
	first := store.Claim[counter, note]{ID: store.ClaimID("n", 1), DocID: "n", Version: 1, At: time.Now().UTC(),
		State: counter{ID: "n", Version: 1}}
	if err := v.Claims.InsertOne(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Get(ctx, "n"); err != nil || got.Version != 1 {
		t.Fatalf("read of a created-then-crashed document: %+v, %v", got, err)
	}
}

func TestLateApplyIsRolledForward(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	if err := v.Create(ctx, "s", &counter{ID: "s", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}
	for _, by := range []string{"a", "b"} {
		if _, err := v.Update(ctx, "s", store.AnyVersion, bump(by), store.UpdateOptions[counter]{}); err != nil {
			t.Fatal(err)
		}
	}
	// A slow writer of version 2 replaces the document after version 3.
	if _, err := v.Docs.ReplaceID(ctx, "s", counter{ID: "s", Version: 2, Applied: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	got, err := v.Update(ctx, "s", 3, bump("c"), store.UpdateOptions[counter]{})
	if err != nil || got.Version != 4 || len(got.Applied) != 3 {
		t.Fatalf("write after a late apply: %+v, %v", got, err)
	}
}

func TestCreateGivesBackItsClaimOnAnotherUniqueIndex(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	v := &store.Versioned[bson.M, note]{Docs: store.Plain(db.Control.Collection("customers")), Claims: store.Plain(db.Control.Collection("events")),
		Version: func(m *bson.M) int64 { return (*m)["version"].(int64) }}
	if err := v.Create(ctx, "a", &bson.M{"_id": "a", "space": "acme", "version": int64(1)}, note{}); err != nil {
		t.Fatal(err)
	}
	err := v.Create(ctx, "b", &bson.M{"_id": "b", "space": "acme", "version": int64(1)}, note{})
	if err == nil || errors.Is(err, store.ErrExists) {
		t.Fatalf("create with a taken space: %v", err)
	}
	if _, err := v.Claim(ctx, "b", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused create's claim: %v, want it gone", err)
	}
	if _, err := v.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused create: %v", err)
	}
}

func TestLeaseHasOneHolder(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	coll := db.Control.Collection("locks")
	now := time.Now()
	for round := range 10 {
		name := fmt.Sprintf("purge:%d", round)
		var held atomic.Int32
		race(racers, func(i int) {
			_, err := store.TakeLease(ctx, coll, name, fmt.Sprint("owner", i), now, time.Minute)
			switch {
			case err == nil:
				held.Add(1)
			case errors.Is(err, store.ErrLeaseHeld):
			default:
				t.Errorf("owner %d: %v", i, err)
			}
		})
		if held.Load() != 1 {
			t.Fatalf("round %d: %d holders", round, held.Load())
		}
		// Expired: exactly one of the next racers takes it over.
		held.Store(0)
		later := now.Add(2 * time.Minute)
		race(racers, func(i int) {
			if _, err := store.TakeLease(ctx, coll, name, fmt.Sprint("late", i), later, time.Minute); err == nil {
				held.Add(1)
			}
		})
		if held.Load() != 1 {
			t.Fatalf("round %d: %d took over the expired lease", round, held.Load())
		}
	}
	// Released: the next owner need not wait.
	g, err := store.TakeLease(ctx, coll, "r", "a", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.TakeLease(ctx, coll, "r", "b", now, time.Hour); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("held lease: %v", err)
	}
	if err := store.ReleaseLease(context.WithoutCancel(ctx), coll, g, now); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TakeLease(ctx, coll, "r", "b", now, time.Hour); err != nil {
		t.Fatalf("released lease: %v", err)
	}
}

// TestDeleteKeepsTheVersions: a delete claims a deletion version, removes
// the document and redacts every earlier claim; a writer still holding an
// old version loses (not found), nothing comes back from a claim, and a
// deletion whose process died after its claim is applied by the next read
// and finished by the next Delete.
func TestDeleteKeepsTheVersions(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	if err := v.Create(ctx, "d", &counter{ID: "d", Version: 1, Applied: []string{"secret"}}, note{}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Update(ctx, "d", 1, bump("more"), store.UpdateOptions[counter]{}); err != nil {
		t.Fatal(err)
	}
	redacted := func(n int64) *counter { return &counter{ID: "d", Version: n} }
	if err := v.Delete(ctx, "d", redacted); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
	for n := int64(1); n <= 3; n++ {
		c, err := v.Claim(ctx, "d", n)
		if err != nil || len(c.State.Applied) != 0 || (n == 3) != c.Deleted {
			t.Fatalf("claim %d after delete: %+v %v", n, c, err)
		}
	}
	// A writer that read version 2 before the delete loses.
	if _, err := v.Update(ctx, "d", store.AnyVersion, bump("late"), store.UpdateOptions[counter]{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("write after delete: %v", err)
	}
	if err := v.Delete(ctx, "d", redacted); err != nil {
		t.Fatalf("a second delete: %v", err)
	}

	// A deletion claimed by a process that died before deleting.
	if err := v.Create(ctx, "e", &counter{ID: "e", Version: 1, Applied: []string{"secret"}}, note{}); err != nil {
		t.Fatal(err)
	}
	dead := store.Claim[counter, note]{ID: store.ClaimID("e", 2), DocID: "e", Version: 2, At: time.Now().UTC(),
		State: counter{ID: "e", Version: 2}, Deleted: true}
	if err := v.Claims.InsertOne(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Latest(ctx, "e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settled read of a half-done delete: %v", err)
	}
	if _, err := v.Get(ctx, "e"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the deletion was not applied: %v", err)
	}
	if err := v.Delete(ctx, "e", func(n int64) *counter { return &counter{ID: "e", Version: n} }); err != nil {
		t.Fatal(err)
	}
	if c, err := v.Claim(ctx, "e", 1); err != nil || len(c.State.Applied) != 0 {
		t.Fatalf("the first claim after the finished delete: %+v %v", c, err)
	}
	if err := v.Delete(ctx, "never", redacted); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of nothing: %v", err)
	}
}
