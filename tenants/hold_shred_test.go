package tenants_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

// Review findings: the shred destroys the key (an irreversible side effect)
// before its SHREDDED claim decides the change. Whenever the claim does not
// follow (a failed scrub or verification, a crash, a lost race), the customer
// stays TERMINATED without a key, and a partner can then put it on legal hold:
// the hold is acknowledged although the data is already gone, and the purge
// never finishes the customer (its cleanup mark stays, its database is never
// dropped). These tests assert the correct behaviour and FAIL on the current
// code.

func customerDataSurvives(t *testing.T, h *harness, id string) bool {
	t.Helper()
	n, err := h.db.Tenant(id).Collection("contacts").Count(t.Context(), store.Range{})
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func cleanupMarks(t *testing.T, h *harness, id string) int64 {
	t.Helper()
	n, err := h.db.Control.Collection("cleanups").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: id}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A shred whose scrub fails (SQLite's checkpoint kept busy by readers: "the
// log stays in use") has destroyed the key already. A legal hold placed
// before the next purge is accepted, and the purge then never finishes.
func TestHoldAcceptedAfterKeyDestroyed(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "hold-after-destroy", 1)
	if err := h.db.Tenant(c.ID).Collection("contacts").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	failing := tenants.NewService(tenants.Config{
		Control: h.db.Control, Keyring: h.keyring, Twilio: h.client, Logger: storetest.Logger(), Now: h.clock.Now,
		Data:      h.db,
		ScrubKeys: func(context.Context) error { return errors.New("scrub: the log stays in use") },
	})
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if sum, err := failing.Purge(ctx, tenants.PurgeOptions{Now: march}, func(tenants.PurgeResult) {}); err != nil || sum.Failed != 1 {
		t.Fatalf("failing purge: %+v %v", sum, err)
	}
	if _, _, err := h.keyring.KeyInfo(ctx, c.ID); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("key after the failed shred: %v", err)
	}

	held, err := h.svc.ChangeRetention(ctx, h.partner, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"})
	if err == nil {
		t.Errorf("legal hold acknowledged (%s v%d, %s) on a customer whose key the purge already destroyed",
			held.Status, held.Version, held.Retention.Strategy)
	}
	h.clock.Add(10 * time.Minute) // past the failed run's lease
	for range 3 {
		if _, err := h.svc.Purge(ctx, tenants.PurgeOptions{Now: march}, func(tenants.PurgeResult) {}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cleanupMarks(t, h, c.ID); n != 0 {
		t.Errorf("cleanup mark still there after 3 purges (retried, and skipped as not due, on every run forever)")
	}
	if customerDataSurvives(t, h, c.ID) {
		t.Errorf("the customer's database was never dropped, though its key is destroyed")
	}
}

// The gate that serialises a shred with a retention change expires after
// store.GateTTL (1 min); the shred holds it across Destroy + ScrubKeys (a
// scrub may wait 10 s per checkpoint attempt, up to 51 attempts). A hold
// arriving after that goes ahead "without the gate", wins the version, and is
// acknowledged, while the key is already destroyed.
func TestExpiredGateLetsHoldRaceTheShred(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "slow-scrub", 1)
	var (
		held    tenants.Customer
		holdErr error
	)
	slow := tenants.NewService(tenants.Config{
		Control: h.db.Control, Keyring: h.keyring, Twilio: h.client, Logger: storetest.Logger(), Now: h.clock.Now,
		Data: h.db,
		ScrubKeys: func(ctx context.Context) error {
			h.clock.Add(2 * time.Minute) // a scrub waiting on busy readers
			held, holdErr = h.svc.ChangeRetention(ctx, h.partner, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"})
			return nil
		},
	})
	var results []tenants.PurgeResult
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := slow.Purge(ctx, tenants.PurgeOptions{Now: march}, func(r tenants.PurgeResult) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	_, _, keyErr := h.keyring.KeyInfo(ctx, c.ID)
	if holdErr == nil && errors.Is(keyErr, crypto.ErrKeyNotFound) {
		t.Errorf("legal hold acknowledged (%s v%d %s) while the concurrent shred destroyed the key (shred result %+v)",
			held.Status, held.Version, held.Retention.Strategy, results)
	}
}
