package idempotency_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/idempotency"
)

const (
	racers = 24
	rounds = 10
)

// outcome is what one racer's Begin returned.
type outcome struct {
	claim  *idempotency.Claim
	replay *idempotency.Response
	err    error
}

// race runs Begin(scope, key, fp) on racers goroutines released at once,
// each through a Store of its own (as separate processes would: nothing is
// shared but the database).
func race(t *testing.T, f fixture, key string, fp []byte) []outcome {
	t.Helper()
	stores := make([]*idempotency.Store, racers)
	for i := range stores {
		stores[i] = idempotency.NewStore(f.coll, f.coll.Database().Collection("idempotency_due"), idempotency.WithClock(f.clock.Now), idempotency.WithKey(testKey))
	}
	out := make([]outcome, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			cl, rp, err := stores[i].Begin(t.Context(), "p", key, fp)
			out[i] = outcome{cl, rp, err}
		})
	}
	close(start)
	wg.Wait()
	return out
}

// oneClaim checks that exactly one racer got a claim and every other one
// ErrInProgress, and returns the claim.
func oneClaim(t *testing.T, round int, out []outcome) *idempotency.Claim {
	t.Helper()
	var claim *idempotency.Claim
	for i, o := range out {
		switch {
		case o.claim != nil && o.replay == nil && o.err == nil:
			if claim != nil {
				t.Fatalf("round %d: racer %d got a second claim", round, i)
			}
			claim = o.claim
		case o.claim == nil && o.replay == nil && errors.Is(o.err, idempotency.ErrInProgress):
		default:
			t.Fatalf("round %d: racer %d: claim %v, replay %v, err %v; want a claim or ErrInProgress", round, i, o.claim, o.replay, o.err)
		}
	}
	if claim == nil {
		t.Fatalf("round %d: no racer got the claim", round)
	}
	return claim
}

func TestRaceBeginClaimsOnce(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	for r := range rounds {
		oneClaim(t, r, race(t, f, fmt.Sprint("fresh-", r), fp))
	}
}

func TestRaceReplayAfterComplete(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	for r := range rounds {
		key := fmt.Sprint("done-", r)
		answer := fmt.Sprintf(`{"round":%d}`, r)
		cl := mustClaim(t, f.store, "p", key, fp)
		if err := f.store.Complete(t.Context(), cl, 201, "/v1/customers/x", []byte(answer), f.cipher); err != nil {
			t.Fatal(err)
		}
		for i, o := range race(t, f, key, fp) {
			if o.err != nil || o.claim != nil || o.replay == nil {
				t.Fatalf("round %d: racer %d: claim %v, replay %v, err %v; want the replay", r, i, o.claim, o.replay, o.err)
			}
			if got, err := o.replay.Open(f.cipher); err != nil || string(got) != answer || o.replay.Status != 201 {
				t.Fatalf("round %d: racer %d replayed %d %q %v, want 201 %s", r, i, o.replay.Status, got, err, answer)
			}
		}
	}
}

func TestRaceTakeOverOfAStaleClaim(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	for r := range rounds {
		key := fmt.Sprint("stale-", r)
		old := mustClaim(t, f.store, "p", key, fp)
		f.clock.Add(idempotency.StaleClaim)
		claim := oneClaim(t, r, race(t, f, key, fp))
		// The first request finishes after all: too late.
		if err := f.store.Complete(t.Context(), old, 201, "", []byte(`{"old":true}`), f.cipher); !errors.Is(err, idempotency.ErrClaimLost) {
			t.Fatalf("round %d: the taken-over claim completes: %v, want ErrClaimLost", r, err)
		}
		if _, _, err := f.store.Begin(t.Context(), "p", key, fp); !errors.Is(err, idempotency.ErrInProgress) {
			t.Fatalf("round %d: after the late Complete: %v, want ErrInProgress", r, err)
		}
		if err := f.store.Complete(t.Context(), claim, 201, "", []byte(`{"new":true}`), f.cipher); err != nil {
			t.Fatalf("round %d: the new claim: %v", r, err)
		}
		_, replay, err := f.store.Begin(t.Context(), "p", key, fp)
		if err != nil || replay == nil {
			t.Fatalf("round %d: replay: %v %v", r, replay, err)
		}
		if got, err := replay.Open(f.cipher); err != nil || string(got) != `{"new":true}` {
			t.Fatalf("round %d: replayed %q %v, want the new answer", r, got, err)
		}
	}
}

func TestRaceClaimAfterRelease(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	for r := range rounds {
		key := fmt.Sprint("released-", r)
		if err := f.store.Release(t.Context(), mustClaim(t, f.store, "p", key, fp)); err != nil {
			t.Fatal(err)
		}
		oneClaim(t, r, race(t, f, key, fp))
	}
}

// TestSweep compacts records older than SweepAfter (their answers gone,
// the generation kept), keeps the others, and a sweep racing requests that
// take an old key again leaves exactly one claim.
func TestSweep(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	cl, _, err := f.store.Begin(ctx, "p", "old", fp)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Complete(ctx, cl, 201, "", []byte(`{"id":"x"}`), f.cipher); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(idempotency.SweepAfter)
	if _, _, err := f.store.Begin(ctx, "p", "recent", fp); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	n, err := f.store.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d records, %v; want 1", n, err)
	}
	for _, d := range f.docs(t) {
		if st := d.Lookup("body", "state").StringValue(); st == "done" || d.Lookup("body", "body").Type != 0 {
			t.Fatalf("a swept record keeps its answer: %s", d)
		}
	}
	if n, err := f.store.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d, %v", n, err)
	}
	// The old key is free again.
	if cl, _, err := f.store.Begin(ctx, "p", "old", fp); err != nil || cl == nil {
		t.Fatalf("old key after the sweep: %v", err)
	}

	for round := range 5 {
		key := fmt.Sprintf("reused-%d", round)
		for range 3 { // a chain of a few generations
			cl, _, err := f.store.Begin(ctx, "p", key, fp)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.store.Release(ctx, cl); err != nil {
				t.Fatal(err)
			}
		}
		f.clock.Add(idempotency.SweepAfter + time.Minute)
		var sweepErr error
		done := make(chan struct{})
		go func() { defer close(done); _, sweepErr = f.store.Sweep(ctx) }()
		out := race(t, f, key, fp)
		<-done
		if sweepErr != nil {
			t.Fatal(sweepErr)
		}
		oneClaim(t, round, out)
		if _, _, err := f.store.Begin(ctx, "p", key, fp); !errors.Is(err, idempotency.ErrInProgress) {
			t.Fatalf("round %d: retry after the sweep race: %v", round, err)
		}
	}
}
