package idempotency_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const ownerID = "0193a0c4-1111-7000-8000-000000000001"

type fixture struct {
	store  *idempotency.Store
	coll   *mongo.Collection
	clock  *fakeclock.Clock
	cipher *crypto.Cipher
}

func setup(t *testing.T) fixture {
	t.Helper()
	db := storetest.MustOpen(t)
	clk := fakeclock.New(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	coll := db.Control.Collection("idempotency")
	return fixture{store: idempotency.NewStore(coll, coll.Database().Collection("idempotency_due"), idempotency.WithClock(clk.Now), idempotency.WithKey(testKey)), coll: coll, clock: clk, cipher: newCipher(t, ownerID, 9)}
}

// docs returns every stored generation, raw.
func (f fixture) docs(t *testing.T) []bson.Raw {
	t.Helper()
	cur, err := f.coll.Find(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	if err := cur.All(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// raw returns the record of the newest generation of the only key stored:
// its fields, with the generation's _id, chain name and number beside them.
func (f fixture) raw(t *testing.T) bson.M {
	t.Helper()
	type gen struct {
		ID   string `bson:"_id"`
		Name string `bson:"name"`
		N    int64  `bson:"gen"`
		Body bson.M `bson:"body"`
	}
	var head gen
	for _, d := range f.docs(t) {
		var g gen
		if err := bson.Unmarshal(d, &g); err != nil {
			t.Fatal(err)
		}
		if head.Name != "" && g.Name != head.Name {
			t.Fatalf("records of two keys: %s and %s", head.Name, g.Name)
		}
		if g.N > head.N {
			head = g
		}
	}
	if head.Body == nil {
		t.Fatal("no record stored")
	}
	head.Body["_id"], head.Body["name"], head.Body["gen"] = head.ID, head.Name, head.N
	return head.Body
}

func newCipher(t *testing.T, customerID string, fill byte) *crypto.Cipher {
	t.Helper()
	c, err := crypto.NewCipher(customerID, "k1", bytes.Repeat([]byte{fill}, crypto.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustClaim(t *testing.T, s *idempotency.Store, scope, key string, fp []byte) *idempotency.Claim {
	t.Helper()
	cl, rp, err := s.Begin(t.Context(), scope, key, fp)
	if err != nil || cl == nil || rp != nil {
		t.Fatalf("begin %s/%s: claim %v, replay %v, err %v; want a claim", scope, key, cl, rp, err)
	}
	return cl
}

func TestReplayAndConflicts(t *testing.T) {
	f := setup(t)
	s, ctx := f.store, t.Context()
	reqBody := []byte(`{"space":"bakery","label":"Secret Bakery"}`)
	fp := idempotency.Fingerprint("POST", "/v1/customers", reqBody)
	claim := mustClaim(t, s, "partner:1", "key-1", fp)
	if _, _, err := s.Begin(ctx, "partner:1", "key-1", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("while running: %v, want ErrInProgress", err)
	}
	answer := []byte(`{"id":"x","label":"Secret Bakery"}`)
	if err := s.Complete(ctx, claim, 201, "/v1/customers/x", answer, f.cipher); err != nil {
		t.Fatal(err)
	}

	// Sealed means sealed: nothing stored reads as the answer, and the
	// record names the owner whose key opens it.
	for _, d := range f.docs(t) {
		if bytes.Contains(d, []byte("Secret Bakery")) || bytes.Contains(d, []byte(`"label"`)) {
			t.Fatalf("a stored document holds the answer in plaintext: %v", d)
		}
	}
	rec := f.raw(t)
	if rec["owner"] != ownerID || rec["state"] != "done" || rec["status"] != int32(201) || rec["location"] != "/v1/customers/x" {
		t.Fatalf("stored record: %v", rec)
	}
	if rec["_id"] != rec["name"].(string)+"#1" {
		t.Fatalf("the first claim is generation %v (%v)", rec["gen"], rec["_id"])
	}
	for _, id := range []string{rec["_id"].(string), rec["name"].(string)} {
		if strings.Contains(id, "key-1") || strings.Contains(id, "partner:1") {
			t.Fatal("the record id shows the key or the scope")
		}
	}

	// A retry hours later, long past the stale timeout, still replays.
	f.clock.Add(5 * time.Hour)
	cl, replay, err := s.Begin(ctx, "partner:1", "key-1", fp)
	if err != nil || cl != nil || replay == nil {
		t.Fatalf("retry: claim %v, replay %v, err %v; want a replay", cl, replay, err)
	}
	if replay.Status != 201 || replay.Location != "/v1/customers/x" || replay.Owner != ownerID {
		t.Fatalf("replay: %+v", replay)
	}
	got, err := replay.Open(f.cipher)
	if err != nil || !bytes.Equal(got, answer) {
		t.Fatalf("open replay: %q %v", got, err)
	}
	// Only the owner's key opens it.
	if _, err := replay.Open(newCipher(t, "0193a0c4-2222-7000-8000-000000000002", 7)); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("open with another customer's cipher: %v, want ErrDecrypt", err)
	}

	other := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"label":"Other"}`))
	if _, _, err := s.Begin(ctx, "partner:1", "key-1", other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("another body: %v, want ErrKeyReused", err)
	}
	otherPath := idempotency.Fingerprint("POST", "/v1/contacts/y/events", reqBody)
	if _, _, err := s.Begin(ctx, "partner:1", "key-1", otherPath); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("another path: %v, want ErrKeyReused", err)
	}
	// Another caller's key space is separate.
	mustClaim(t, s, "partner:2", "key-1", other)

	// 24 h after the first claim the key is free again, for any request.
	f.clock.Add(19*time.Hour + time.Second)
	mustClaim(t, s, "partner:1", "key-1", other)
}

func TestExpiredRecordIsTakenOverOnce(t *testing.T) {
	f := setup(t)
	s, ctx := f.store, t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	old := mustClaim(t, s, "p", "k", fp)
	if err := s.Complete(ctx, old, 201, "", []byte(`{}`), f.cipher); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(idempotency.Retention)
	// The same request a day later runs again instead of replaying.
	fresh := mustClaim(t, s, "p", "k", fp)
	if rec := f.raw(t); rec["state"] != "in_progress" || rec["body"] != nil || rec["owner"] != nil || rec["gen"] != int64(2) {
		t.Fatalf("the take-over is not a fresh second generation: %v", rec)
	}
	if _, _, err := s.Begin(ctx, "p", "k", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("after take-over: %v, want ErrInProgress", err)
	}
	if err := s.Complete(ctx, fresh, 200, "", []byte(`{"n":2}`), f.cipher); err != nil {
		t.Fatal(err)
	}
	_, replay, err := s.Begin(ctx, "p", "k", fp)
	if err != nil || replay == nil || replay.Status != 200 {
		t.Fatalf("replay of the new answer: %+v %v", replay, err)
	}
	if got, err := replay.Open(f.cipher); err != nil || string(got) != `{"n":2}` {
		t.Fatalf("new answer: %q %v", got, err)
	}
}

func TestReleaseAndStaleClaims(t *testing.T) {
	f := setup(t)
	s, ctx := f.store, t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	claim := mustClaim(t, s, "p", "k", fp)
	if err := s.Release(ctx, claim); err != nil {
		t.Fatal(err)
	}
	claim = mustClaim(t, s, "p", "k", fp)

	// Until the stale timeout the claim holds, even against another body.
	f.clock.Add(idempotency.StaleClaim - time.Millisecond)
	if _, _, err := s.Begin(ctx, "p", "k", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("just before stale: %v, want ErrInProgress", err)
	}
	other := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":1}`))
	if _, _, err := s.Begin(ctx, "p", "k", other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("another body on a running claim: %v, want ErrKeyReused", err)
	}
	// A claim whose request died is taken over after StaleClaim, by the
	// same request only.
	f.clock.Add(time.Millisecond)
	if _, _, err := s.Begin(ctx, "p", "k", other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("another body on a stale claim: %v, want ErrKeyReused", err)
	}
	again := mustClaim(t, s, "p", "k", fp)

	// The slow first request finishes late: its answer is not kept and its
	// Release leaves the new claim alone.
	if err := s.Complete(ctx, claim, 201, "", []byte(`{"first":true}`), f.cipher); !errors.Is(err, idempotency.ErrClaimLost) {
		t.Fatalf("late complete: %v, want ErrClaimLost", err)
	}
	if err := s.Release(ctx, claim); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Begin(ctx, "p", "k", fp); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("the new claim was dropped: %v", err)
	}
	if err := s.Complete(ctx, again, 201, "", []byte(`{"second":true}`), f.cipher); err != nil {
		t.Fatal(err)
	}
	// A completed answer is never released.
	if err := s.Release(ctx, again); err != nil {
		t.Fatal(err)
	}
	_, replay, err := s.Begin(ctx, "p", "k", fp)
	if err != nil || replay == nil {
		t.Fatalf("after release of a completed claim: %v %v", replay, err)
	}
	if got, _ := replay.Open(f.cipher); string(got) != `{"second":true}` {
		t.Fatalf("replayed %q, want the second answer", got)
	}
}

func TestCompleteNeedsAnOwner(t *testing.T) {
	f := setup(t)
	cl := mustClaim(t, f.store, "p", "k", nil)
	if err := f.store.Complete(t.Context(), cl, 201, "", []byte(`{}`), nil); err == nil {
		t.Fatal("Complete without an owner cipher succeeded")
	}
	if rec := f.raw(t); rec["state"] != "in_progress" || rec["body"] != nil {
		t.Fatalf("record after a refused Complete: %v", rec)
	}
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"", false},
		{"k", true},
		{strings.Repeat("k", 255), true},
		{strings.Repeat("k", 256), false},
		{"a b~!", true},
		{"tab\tkey", false},
		{"nl\n", false},
		{"del\x7f", false},
		{"naïve", false},
	} {
		if got := idempotency.ValidKey(tc.key); got != tc.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}

func TestInvalidKeysAreRefusedBeforeStorage(t *testing.T) {
	f := setup(t)
	for _, k := range []string{"", strings.Repeat("k", 256), "tab\tkey", "naïve"} {
		if _, _, err := f.store.Begin(t.Context(), "p", k, nil); !errors.Is(err, idempotency.ErrInvalidKey) {
			t.Errorf("key %q: %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	base := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":1}`))
	if len(base) != 32 {
		t.Fatalf("fingerprint is %d bytes, want 32 (SHA-256)", len(base))
	}
	if !bytes.Equal(base, idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":1}`))) {
		t.Fatal("fingerprint is not deterministic")
	}
	for name, fp := range map[string][]byte{
		"method": idempotency.Fingerprint("PUT", "/v1/customers", []byte(`{"a":1}`)),
		"path":   idempotency.Fingerprint("POST", "/v1/customers/x", []byte(`{"a":1}`)),
		"body":   idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":2}`)),
	} {
		if bytes.Equal(fp, base) {
			t.Errorf("another %s gives the same fingerprint", name)
		}
	}
	// Bytes moved between the parts make another request.
	if bytes.Equal(idempotency.Fingerprint("POST", "/v1/customers\nx", []byte(`{}`)),
		idempotency.Fingerprint("POST", "/v1/customers", []byte("x\n{}"))) {
		t.Error("a path ending in the body's first bytes gives the same fingerprint")
	}
}

func TestConcurrentBeginsClaimOnce(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	var wg sync.WaitGroup
	var mu sync.Mutex
	claims := 0
	for range 8 {
		wg.Go(func() {
			cl, _, err := f.store.Begin(t.Context(), "p", "same", fp)
			if err != nil && !errors.Is(err, idempotency.ErrInProgress) {
				t.Error(err)
			}
			if cl != nil {
				mu.Lock()
				claims++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if claims != 1 {
		t.Fatalf("%d concurrent claims of one key, want 1", claims)
	}
}

func TestConcurrentTakeOverOfAStaleClaimClaimsOnce(t *testing.T) {
	f := setup(t)
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	mustClaim(t, f.store, "p", "stale", fp)
	f.clock.Add(2 * idempotency.StaleClaim)
	var wg sync.WaitGroup
	var mu sync.Mutex
	claims := 0
	for range 8 {
		wg.Go(func() {
			cl, _, err := f.store.Begin(t.Context(), "p", "stale", fp)
			if err != nil && !errors.Is(err, idempotency.ErrInProgress) {
				t.Error(err)
			}
			if cl != nil {
				mu.Lock()
				claims++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if claims != 1 {
		t.Fatalf("%d concurrent take-overs of one stale claim, want 1", claims)
	}
}

func TestReleaseMarksItsGenerationAndFreesTheKey(t *testing.T) {
	f := setup(t)
	s, ctx := f.store, t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":1}`))
	first := mustClaim(t, s, "p", "k", fp)
	if err := s.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	if rec := f.raw(t); rec["state"] != "released" || rec["gen"] != int64(1) {
		t.Fatalf("released record: %v", rec)
	}
	// A released key is free for any request, not only the one that
	// released it.
	other := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{"a":2}`))
	second := mustClaim(t, s, "p", "k", other)
	if rec := f.raw(t); rec["state"] != "in_progress" || rec["gen"] != int64(2) {
		t.Fatalf("claim after a release: %v", rec)
	}
	// Releasing the first claim again touches only its own generation.
	if err := s.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Begin(ctx, "p", "k", other); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("after a stale release: %v, want ErrInProgress", err)
	}
	if err := s.Release(ctx, second); err != nil {
		t.Fatal(err)
	}
	// Generations are never deleted one by one.
	if n := len(f.docs(t)); n != 2 {
		t.Fatalf("%d generations stored, want 2", n)
	}
	mustClaim(t, s, "p", "k", fp)
}

func TestAnswerOpensOnlyInItsGeneration(t *testing.T) {
	f := setup(t)
	s, ctx := f.store, t.Context()
	fp := idempotency.Fingerprint("POST", "/v1/customers", []byte(`{}`))
	old := mustClaim(t, s, "p", "k", fp)
	if err := s.Complete(ctx, old, 201, "/v1/customers/x", []byte(`{"n":1}`), f.cipher); err != nil {
		t.Fatal(err)
	}
	sealed := f.raw(t)["body"]
	f.clock.Add(idempotency.Retention)
	mustClaim(t, s, "p", "k", fp)
	// Copy the first generation's answer into the second one, as it is.
	head := f.raw(t)
	_, err := f.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: head["_id"]}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "body.state", Value: "done"}, {Key: "body.status", Value: 201},
		{Key: "body.owner", Value: ownerID}, {Key: "body.body", Value: sealed},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, replay, err := s.Begin(ctx, "p", "k", fp)
	if err != nil || replay == nil {
		t.Fatalf("replay: %v %v", replay, err)
	}
	if _, err := replay.Open(f.cipher); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("an answer moved to another generation: %v, want ErrDecrypt", err)
	}
}

// testKey keys the fingerprints of every store of a test, as one key does
// for every instance in production.
var testKey = bytes.Repeat([]byte{7}, 32)
