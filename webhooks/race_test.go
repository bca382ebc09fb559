package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/internal/racing"
	"github.com/switchboard/switchboard/webhooks"
)

// TestRacingPatchesHaveOneWinner: PATCHes with one expectedVersion, let go
// at once, repeatedly: one wins each round, the others are conflicts.
func TestRacingPatchesHaveOneWinner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := webhooks.Partner(e.partner.ID)
	url := "http://127.0.0.1:1/hook"
	ep, err := e.p.Webhooks.Create(t.Context(), o, webhooks.Input{URL: &url, Events: []string{"*"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		cur, err := e.p.Webhooks.Get(t.Context(), o, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		var won, lost atomic.Int64
		racing.Release(10, func(i int) {
			d := strings.Repeat("x", i+1)
			_, err := e.p.Webhooks.Update(context.Background(), o, ep.ID, cur.Version, webhooks.Input{Description: &d}, nil)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, switchboard.ErrVersionConflict):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
		got, _ := e.p.Webhooks.Get(t.Context(), o, ep.ID)
		if won.Load() != 1 || lost.Load() != 9 || got.Version != cur.Version+1 {
			t.Fatalf("round %d: %d won, %d lost, version %d → %d", round, won.Load(), lost.Load(), cur.Version, got.Version)
		}
	}
}

// TestRacingRetriesMakeOneAttempt: many retries of one failed delivery at
// once: one is taken, the others are invalid transitions, and the
// receiver gets one attempt.
func TestRacingRetriesMakeOneAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	var fail atomic.Bool
	fail.Store(true)
	r.answer = func(int) int {
		if fail.Load() {
			return http.StatusGone // failed at once (and the endpoint disabled)
		}
		return http.StatusOK
	}
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	d, err := e.p.Webhooks.Test(t.Context(), o, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, o, ep.ID, d.ID, webhooks.StatusFailed)
	on := true
	if _, err := e.p.Webhooks.Update(t.Context(), o, ep.ID, 0, webhooks.Input{Enabled: &on}, nil); err != nil {
		t.Fatal(err)
	}
	fail.Store(false)
	before := r.n.Load()
	var taken, refused atomic.Int64
	racing.Release(10, func(int) {
		_, err := e.p.Webhooks.Retry(context.Background(), o, ep.ID, d.ID)
		switch {
		case err == nil:
			taken.Add(1)
		case errors.Is(err, webhooks.ErrInvalidTransition):
			refused.Add(1)
		default:
			t.Error(err)
		}
	})
	if taken.Load() != 1 || refused.Load() != 9 {
		t.Fatalf("%d retries taken, %d refused", taken.Load(), refused.Load())
	}
	waitStatus(t, e, o, ep.ID, d.ID, webhooks.StatusDelivered)
	time.Sleep(300 * time.Millisecond)
	if n := r.n.Load() - before; n != 1 {
		t.Fatalf("%d attempts after the retries, want 1", n)
	}
}

// TestRacingRotationsLeaveTwoSecrets: rotations at once: every one is
// applied in turn, and at most two secrets sign afterwards.
func TestRacingRotationsLeaveTwoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	var secrets []string
	done := make(chan string, 8)
	racing.Release(8, func(int) {
		rot, err := e.p.Webhooks.Rotate(context.Background(), o, ep.ID)
		if err != nil {
			t.Error(err)
			return
		}
		done <- rot.Secret
	})
	close(done)
	for s := range done {
		secrets = append(secrets, s)
		r.trust(s)
	}
	got, _ := e.p.Webhooks.Get(t.Context(), o, ep.ID)
	if len(secrets) != 8 || got.Version != ep.Version+8 {
		t.Fatalf("%d rotations answered, version %d → %d", len(secrets), ep.Version, got.Version)
	}
	if _, err := e.p.Webhooks.Test(t.Context(), o, ep.ID); err != nil {
		t.Fatal(err)
	}
	r.wait(1)
	if r.bad.Load() != 0 {
		t.Fatal("the delivery verified with none of the rotations' secrets")
	}
}

func waitStatus(t *testing.T, e *env, o webhooks.Owner, endpointID, id, status string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _, err := e.p.Webhooks.Deliveries(t.Context(), o, endpointID, webhooks.ListInput{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.ID == id && d.Status == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s never %s: %+v", id, status, ds)
		}
	}
}

// TestAttemptOfADeadProcessIsMadeAgain: a process stops (as if killed)
// while its attempt is in flight; another process makes the attempt again
// once the lease ends, and the delivery is delivered.
func TestAttemptOfADeadProcessIsMadeAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.worker(t)
	stopFirst := run(t, first)
	r := newReceiver(t)
	held := make(chan struct{})
	var once atomic.Bool
	r.answer = func(int) int {
		if once.CompareAndSwap(false, true) {
			close(held)
			time.Sleep(2 * time.Second) // the first process dies meanwhile
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	d, err := e.p.Webhooks.Test(t.Context(), o, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	<-held
	stopFirst()
	run(t, e.worker(t))
	start := time.Now()
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ds, _, err := e.p.Webhooks.Deliveries(t.Context(), o, ep.ID, webhooks.ListInput{Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].ID == d.ID && ds[0].Status == webhooks.StatusDelivered {
			if ds[0].Attempts != 2 || time.Since(start) < 10*time.Second {
				t.Fatalf("delivered after %s with %d attempts: the lease did not hold", time.Since(start), ds[0].Attempts)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead process's attempt was never made again: %+v", ds)
		}
	}
}
