// Package idempotency keeps the Idempotency-Key records of create routes: a
// retry with the same key and the same request within 24 hours gets the
// first answer again.
//
// Invariants:
//   - a record is keyed by (scope, key): the scope names the caller, so two
//     callers' keys never meet; its _id is a hash, so neither is stored plain;
//   - at most one request holds the claim on a key at a time: a claim is
//     taken with one insert (or one conditional update of a dead or expired
//     record), never by read-then-write;
//   - a key is bound to the request that first claimed it (a SHA-256 of its
//     method, path and body): another request with that key is ErrKeyReused;
//   - the stored answer carries personal data, so it is kept only sealed
//     under the key of the customer it belongs to, with that customer's id
//     beside it; shredding the customer makes the answer unreadable too, and
//     no plaintext copy is ever written;
//   - only answers that were completed are replayed; a released or dead
//     claim lets a retry run the request again;
//   - records older than Retention count as absent (the embedded engine has
//     no TTL indexes): the next claim takes them over.
//
// The embedded engine (FerretDB v1) runs a conditional update or delete as a
// query followed by a write by _id, so two of them on one record can both
// match. The Store therefore also serializes its own read-modify-writes of a
// record within the process; on MongoDB the conditional update alone is
// atomic across processes, and the embedded engine serves one process.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
)

// Sentinel errors.
var (
	// ErrInProgress is a retry while the first request with the key still
	// runs.
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	// ErrKeyReused is a key sent again with another request.
	ErrKeyReused = errors.New("idempotency: key reused with another request")
	// ErrInvalidKey is a key that is not 1..255 printable ASCII characters.
	ErrInvalidKey = errors.New("idempotency: invalid key")
	// ErrClaimLost is a Complete whose claim was taken over meanwhile (the
	// request outlived the stale timeout): its answer is not kept.
	ErrClaimLost = errors.New("idempotency: claim taken over by a later request")
)

// Retention is how long an answer is replayed.
const Retention = 24 * time.Hour

// StaleClaim is how long an unfinished claim blocks retries: past it, the
// request that claimed the key is taken to have died, and a retry takes the
// claim over.
const StaleClaim = time.Minute

// collection names the sealed field's place in its associated data.
const collection = "idempotency"

// Store keeps records in one collection. It is safe for concurrent use.
type Store struct {
	coll  *mongo.Collection
	now   func() time.Time
	locks [64]sync.Mutex // by record id: see the package comment
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the store's clock (tests drive expiry and stale claims
// through it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store over coll (the control database's idempotency
// collection).
func NewStore(coll *mongo.Collection, opts ...Option) *Store {
	s := &Store{coll: coll, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// record is the stored form. Body is sealed under Owner's key.
type record struct {
	ID          string    `bson:"_id"`
	Fingerprint []byte    `bson:"fingerprint"`
	State       string    `bson:"state"`
	CreatedAt   time.Time `bson:"createdAt"`
	Status      int       `bson:"status,omitempty"`
	Location    string    `bson:"location,omitempty"`
	Owner       string    `bson:"owner,omitempty"`
	Body        []byte    `bson:"body,omitempty"`
}

// Record states.
const (
	stateInProgress = "in_progress"
	stateDone       = "done"
)

// Response is a stored answer to replay. Body is still sealed: Open it with
// the cipher of Owner.
type Response struct {
	Status   int
	Location string
	Owner    string
	Body     []byte

	id string
}

// Claim is the right to run a request once; Complete or Release ends it.
type Claim struct {
	id        string
	createdAt time.Time
}

// ValidKey reports whether key is 1..255 printable ASCII characters.
func ValidKey(key string) bool {
	if len(key) < 1 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// Fingerprint identifies a request: the SHA-256 of its method, its path as
// requested (with its ids, so the same key on two resources is two requests)
// and its body, each but the last length-prefixed so no two requests share
// one.
func Fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(method), method, len(path), path)
	h.Write(body)
	return h.Sum(nil)
}

// lock serializes this process's read-modify-writes of one record.
func (s *Store) lock(id string) func() {
	m := &s.locks[(int(id[0])<<8|int(id[1]))%len(s.locks)]
	m.Lock()
	return m.Unlock
}

func recordID(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// Begin claims (scope, key) for the request with the given fingerprint. It
// returns either a claim, and the caller runs the request and then calls
// Complete or Release; or the stored answer of the same request, to replay;
// or ErrInProgress, ErrKeyReused or ErrInvalidKey.
func (s *Store) Begin(ctx context.Context, scope, key string, fingerprint []byte) (*Claim, *Response, error) {
	if !ValidKey(key) {
		return nil, nil, ErrInvalidKey
	}
	id := recordID(scope, key)
	// BSON dates hold milliseconds: truncate so the conditional updates
	// below match what was stored.
	now := s.now().UTC().Truncate(time.Millisecond)
	rec := record{ID: id, Fingerprint: fingerprint, State: stateInProgress, CreatedAt: now}
	for range 3 {
		_, err := s.coll.InsertOne(ctx, rec)
		if err == nil {
			return &Claim{id: id, createdAt: now}, nil, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		cl, replay, retry, err := s.resolve(ctx, rec)
		if !retry {
			return cl, replay, err
		}
	}
	// Three rounds lost to other requests with the same key: one of them
	// holds it now.
	return nil, nil, ErrInProgress
}

// resolve decides what the record that holds rec's id means for the claim
// rec: a replay, ErrKeyReused, ErrInProgress, or a take-over of an expired
// record or a dead claim. retry reports that the record went away or
// changed meanwhile.
func (s *Store) resolve(ctx context.Context, rec record) (cl *Claim, replay *Response, retry bool, err error) {
	defer s.lock(rec.ID)()
	var old record
	err = s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: rec.ID}}).Decode(&old)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, true, nil // released meanwhile: claim it again
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("idempotency begin: %w", err)
	}
	if age := rec.CreatedAt.Sub(old.CreatedAt); age < Retention {
		switch {
		case string(old.Fingerprint) != string(rec.Fingerprint):
			return nil, nil, false, ErrKeyReused
		case old.State == stateDone:
			return nil, &Response{Status: old.Status, Location: old.Location, Owner: old.Owner, Body: old.Body, id: rec.ID}, false, nil
		case age < StaleClaim:
			return nil, nil, false, ErrInProgress
		}
	}
	// An expired record, or the claim of a request that died: take it over,
	// unless another request just did (its createdAt changed).
	res, err := s.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: rec.ID}, {Key: "createdAt", Value: old.CreatedAt}}, rec)
	if err != nil {
		return nil, nil, false, fmt.Errorf("idempotency begin: %w", err)
	}
	if res.MatchedCount == 0 {
		return nil, nil, true, nil
	}
	return &Claim{id: rec.ID, createdAt: rec.CreatedAt}, nil, false, nil
}

// Complete stores the answer of a claimed request: its status, its Location
// header (for a 201) and its body sealed with owner, the cipher of the
// customer the answer belongs to. It returns ErrClaimLost when a later
// request took the claim over meanwhile.
func (s *Store) Complete(ctx context.Context, cl *Claim, status int, location string, body []byte, owner *crypto.Cipher) error {
	if owner == nil {
		return errors.New("idempotency complete: no owner cipher")
	}
	sealed, err := owner.Seal(field(cl.id), body)
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	unlock := s.lock(cl.id)
	defer unlock()
	res, err := s.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: cl.id}, {Key: "createdAt", Value: cl.createdAt}, {Key: "state", Value: stateInProgress}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "state", Value: stateDone}, {Key: "status", Value: status}, {Key: "location", Value: location},
			{Key: "owner", Value: owner.CustomerID()}, {Key: "body", Value: sealed},
		}}})
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("idempotency complete: %w", ErrClaimLost)
	}
	return nil
}

// Release drops a claim whose request did not succeed, so a retry runs it
// again. Releasing a claim that was taken over leaves the new claim alone.
func (s *Store) Release(ctx context.Context, cl *Claim) error {
	defer s.lock(cl.id)()
	_, err := s.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: cl.id}, {Key: "createdAt", Value: cl.createdAt}, {Key: "state", Value: stateInProgress}})
	if err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	return nil
}

// Open unseals a replayed answer with the cipher of its Owner. Any other
// cipher, or a body moved from another record, fails to open.
func (r *Response) Open(owner *crypto.Cipher) ([]byte, error) {
	b, err := owner.Open(field(r.id), r.Body)
	if err != nil {
		return nil, fmt.Errorf("idempotency open: %w", err)
	}
	return b, nil
}

func field(id string) crypto.Field {
	return crypto.Field{Collection: collection, DocumentID: id, Name: "body"}
}
