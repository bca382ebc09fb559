package idempotency_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func setup(t *testing.T) (*idempotency.Store, *fakeclock.Clock, *crypto.Cipher, func() bson.M) {
	db := storetest.MustOpen(t)
	clk := fakeclock.New(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	coll := db.Control.Collection("idempotency")
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-000000000001", "k1", bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	raw := func() bson.M {
		var m bson.M
		if err := coll.FindOne(t.Context(), bson.D{}).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return idempotency.NewStore(coll, idempotency.WithClock(clk.Now)), clk, c, raw
}

func TestReplayAndConflicts(t *testing.T) {
	s, clk, c, raw := setup(t)
	ctx := t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"label":"Secret Bakery"}`))
	claim, replay, err := s.Begin(ctx, "partner:1", "key-1", fp)
	if err != nil || claim == nil || replay != nil {
		t.Fatalf("first begin: %v %v %v", claim, replay, err)
	}
	if _, _, err := s.Begin(ctx, "partner:1", "key-1", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("while running: %v", err)
	}
	body := []byte(`{"label":"Secret Bakery"}`)
	if err := s.Complete(ctx, claim, 201, "/v1/customers/x", body, c); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(raw()["body"].(bson.Binary).Data), []byte("Secret Bakery")) {
		t.Fatal("the stored answer is not sealed")
	}
	_, replay, err = s.Begin(ctx, "partner:1", "key-1", fp)
	if err != nil || replay == nil || replay.Status != 201 || replay.Location != "/v1/customers/x" || replay.Owner != c.CustomerID() {
		t.Fatalf("replay: %+v %v", replay, err)
	}
	got, err := idempotency.Open(replay, c, "partner:1", "key-1")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("open replay: %q %v", got, err)
	}
	other := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"label":"Other"}`))
	if _, _, err := s.Begin(ctx, "partner:1", "key-1", other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("reused key: %v", err)
	}
	// Another caller's key space is separate.
	if cl, _, err := s.Begin(ctx, "partner:2", "key-1", other); err != nil || cl == nil {
		t.Fatalf("other scope: %v", err)
	}
	// After 24 h the key is free again.
	clk.Add(24*time.Hour + time.Second)
	if cl, rp, err := s.Begin(ctx, "partner:1", "key-1", other); err != nil || cl == nil || rp != nil {
		t.Fatalf("after 24 h: %v %v %v", cl, rp, err)
	}
}

func TestReleaseAndStaleClaims(t *testing.T) {
	s, clk, _, _ := setup(t)
	ctx := t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	claim, _, err := s.Begin(ctx, "p", "k", fp)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, claim); err != nil {
		t.Fatal(err)
	}
	claim, _, err = s.Begin(ctx, "p", "k", fp)
	if err != nil || claim == nil {
		t.Fatalf("after release: %v", err)
	}
	// A claim whose request died is taken over after a minute.
	clk.Add(61 * time.Second)
	again, _, err := s.Begin(ctx, "p", "k", fp)
	if err != nil || again == nil {
		t.Fatalf("stale claim: %v", err)
	}
	// The dead request's late Release must not drop the new claim.
	if err := s.Release(ctx, claim); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Begin(ctx, "p", "k", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("the new claim was dropped: %v", err)
	}
}

func TestInvalidKeys(t *testing.T) {
	s, _, _, _ := setup(t)
	for _, k := range []string{"", strings.Repeat("k", 256), "tab\tkey", "naïve"} {
		if _, _, err := s.Begin(t.Context(), "p", k, nil); !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("key %q: %v", k, err)
		}
	}
	if !idempotency.ValidKey(strings.Repeat("k", 255)) || !idempotency.ValidKey("a b~") {
		t.Error("valid keys refused")
	}
}

func TestConcurrentBeginsClaimOnce(t *testing.T) {
	s, _, _, _ := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	var wg sync.WaitGroup
	var mu sync.Mutex
	claims := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, _, err := s.Begin(t.Context(), "p", "same", fp)
			if err != nil && !errors.Is(err, idempotency.ErrInProgress) {
				t.Error(err)
			}
			if cl != nil {
				mu.Lock()
				claims++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if claims != 1 {
		t.Fatalf("%d concurrent claims of one key, want 1", claims)
	}
}
