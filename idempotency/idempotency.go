// Package idempotency keeps the Idempotency-Key records of create routes: a
// retry with the same key and the same request within 24 hours gets the
// first answer again.
//
// A key's records are a store.Chain: generations "<h>#1", "<h>#2", … where
// h is a hash of (scope, key); the newest generation is the key's current
// record.
//
// Invariants:
//   - a record is keyed by (scope, key): the scope names the caller, so two
//     callers' keys never meet; its chain name is a hash, so neither is
//     stored plain;
//   - a claim on a key is the insert of a generation: of racing requests,
//     exactly one inserts generation n (the others get a duplicate key and
//     look again), so at most one request holds the key at a time. Taking
//     over an expired record, a released claim or the claim of a request
//     that died is inserting the next generation, never an update of the
//     old one; no write is conditional on a field (the embedded engine,
//     FerretDB v1, runs such a write as a read and a write by _id, which two
//     racers can both pass);
//   - only the request that took a generation writes it again (by exact
//     _id): done with its answer, or released; generations are never deleted
//     one by one (a gap would let a walker claim one below the current);
//   - a key is bound to the request that claimed it (a SHA-256 of its
//     method, path and body): another request with that key is ErrKeyReused
//     while the claim runs or its answer is kept;
//   - the stored answer carries personal data, so it is kept only sealed
//     under the key of the customer it belongs to, with that customer's id
//     beside it and the generation's _id in its associated data; shredding
//     the customer makes the answer unreadable too, and no plaintext copy is
//     ever written;
//   - only the answer of the current generation is replayed: a Complete
//     whose generation was taken over (a newer one exists) is ErrClaimLost.
//     A released claim frees the key for any request; the claim of a
//     request that died (older than StaleClaim), for a retry of that request;
//   - records older than Retention count as absent (the embedded engine has
//     no TTL indexes): the next claim takes them over.
package idempotency

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// Sentinel errors.
var (
	// ErrInProgress is a retry while the first request with the key still
	// runs.
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	// ErrKeyReused is a key sent again with another request (the one
	// error of that name: switchboard.ErrIdempotencyKeyReused).
	ErrKeyReused = switchboard.ErrIdempotencyKeyReused
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

// beginRounds bounds how often Begin looks again after losing the insert of
// a generation to another request.
const beginRounds = 5

// Store keeps records in one collection. It is safe for concurrent use.
type Store struct {
	chain store.Chain[record]
	// due lists every generation by its creation time ("<time>/<gen id>",
	// written before the generation), so Sweep reads only what is due.
	due *store.Coll
	now func() time.Time
	// key makes the stored fingerprints keyed (HMAC): a plain hash of a
	// request would let anyone holding a copy of the database confirm a
	// guessed body (an email) offline.
	key []byte
}

// Option configures a Store.
type Option func(*Store)

// WithKey sets the key the stored fingerprints are keyed with: every
// instance must use the same one (crypto.MasterKey.DeriveKey). Without it a
// Store uses a random key, good for this process only.
func WithKey(key []byte) Option { return func(s *Store) { s.key = key } }

// WithClock sets the store's clock (tests drive expiry and stale claims
// through it).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store over coll (the control database's idempotency
// collection) and due (its list by creation time, idempotency_due).
func NewStore(coll, due *mongo.Collection, opts ...Option) *Store {
	s := &Store{chain: store.Chain[record]{Coll: store.Plain(coll)}, now: time.Now, due: store.Plain(due)}
	for _, o := range opts {
		o(s)
	}
	if s.key == nil {
		s.key = make([]byte, 32)
		rand.Read(s.key)
	}
	return s
}

// record is the body of one generation. Body is sealed under Owner's key.
type record struct {
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
	stateReleased   = "released"
	stateCompacted  = "compacted" // swept: nothing but the generation stays
)

// Response is a stored answer to replay. Body is still sealed: Open it with
// the cipher of Owner.
type Response struct {
	Status   int
	Location string
	Owner    string
	Body     []byte

	id string // the generation's _id
}

// Claim is the right to run a request once; Complete or Release ends it.
type Claim struct {
	gen  *store.Gen[record]
	done bool // completed: Release leaves the answer alone
}

// ValidKey reports whether key is 1..255 printable ASCII characters.
func ValidKey(key string) bool { return switchboard.PrintableASCII(key, 255, true) }

// Fingerprint identifies a request: the SHA-256 of its method, its path as
// requested (with its ids, so the same key on two resources is two
// requests) and its body, each but the last length-prefixed so no two
// requests share one. A JSON body counts by its canonical form (RFC 8785):
// the same JSON re-formatted or with its members reordered is the same
// request.
func Fingerprint(method, path string, body []byte) []byte {
	if v := jsontext.Value(bytes.Clone(body)); v.Canonicalize() == nil {
		body = v
	}
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s", len(method), method, len(path), path)
	h.Write(body)
	return h.Sum(nil)
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
	m := hmac.New(sha256.New, s.key)
	m.Write(fingerprint)
	fingerprint = m.Sum(nil)
	name := recordID(scope, key)
	// BSON dates hold milliseconds: truncate so a claim's createdAt is what
	// was stored.
	now := s.now().UTC().Truncate(time.Millisecond)
	for range beginRounds {
		n := int64(1)
		head, err := s.chain.Head(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		default:
			if replay, err := decide(head, fingerprint, now); replay != nil || err != nil {
				return nil, replay, err
			}
			n = head.N + 1
		}
		if err := s.noteDue(ctx, store.GenID(name, n), now); err != nil {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		g, err := s.chain.Take(ctx, name, n, record{Fingerprint: fingerprint, State: stateInProgress, CreatedAt: now})
		if err == nil {
			return &Claim{gen: g}, nil, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		// Another request took generation n first: look at it.
	}
	// Every round lost to other requests with the same key: one of them
	// holds it now.
	return nil, nil, ErrInProgress
}

// SweepAfter is how old a record must be before Sweep compacts it: twice
// Retention, so no request can still replay it.
const SweepAfter = 2 * Retention

// Sweep compacts every record older than SweepAfter (the embedded engine
// has no TTL indexes): its stored answer and fingerprint are deleted and a
// released tombstone of a few bytes stays in its place. Records are never
// deleted one by one: a gap in a key's chain of generations would let a
// later request claim below the current generation (see store.Chain). It
// reads the range of the due list up to the cutoff, so its cost is what is
// due, and returns how many records it compacted.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-SweepAfter).UTC().Truncate(time.Millisecond)
	type dueDoc struct {
		ID string `bson:"_id"`
	}
	r := store.Range{To: dueKey(cutoff, ""), Limit: 1000}
	n := 0
	for {
		due, err := store.All[dueDoc](ctx, s.due, r)
		if err != nil {
			return n, fmt.Errorf("idempotency sweep: %w", err)
		}
		var done []string
		for _, d := range due {
			_, genID, _ := strings.Cut(d.ID, "/")
			var g store.Gen[record]
			err := s.chain.Coll.FindID(ctx, genID).Decode(&g)
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				// Its request lost the generation: nothing to compact.
			case err != nil:
				return n, fmt.Errorf("idempotency sweep: %w", err)
			case g.Body.State != stateCompacted && g.Body.CreatedAt.Before(cutoff):
				// Only a request older than SweepAfter could still write
				// this generation; none runs that long.
				g.Body = record{State: stateCompacted, CreatedAt: g.Body.CreatedAt}
				if err := s.chain.Put(ctx, &g); err != nil {
					return n, fmt.Errorf("idempotency sweep: %w", err)
				}
				n++
			}
			// A generation taken later by another request is listed under
			// that one's time too.
			done = append(done, d.ID)
		}
		if _, err := s.due.DeleteIDs(ctx, done); err != nil {
			return n, fmt.Errorf("idempotency sweep: %w", err)
		}
		if len(due) < r.Limit {
			return n, nil
		}
	}
}

func dueKey(at time.Time, genID string) string {
	return store.TimeKey(at) + "/" + genID
}

func (s *Store) noteDue(ctx context.Context, genID string, at time.Time) error {
	err := s.due.InsertOne(ctx, bson.D{{Key: "_id", Value: dueKey(at, genID)}})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return err
	}
	return nil
}

// Reindex lists every record in the due list: for records written before
// it existed (switchboard migrate).
func (s *Store) Reindex(ctx context.Context) (int, error) {
	cur, err := s.chain.Coll.Find(ctx, store.Range{})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	n := 0
	for cur.Next(ctx) {
		var g store.Gen[record]
		if err := cur.Decode(&g); err != nil {
			return n, err
		}
		if g.Body.State == stateCompacted {
			continue
		}
		if err := s.noteDue(ctx, g.ID, g.Body.CreatedAt); err != nil {
			return n, err
		}
		n++
	}
	return n, cur.Err()
}

// decide says what the current generation head means for a request with
// fingerprint at now: a replay, ErrKeyReused, ErrInProgress, or neither
// (nil, nil), and the request takes the next generation.
func decide(head *store.Gen[record], fingerprint []byte, now time.Time) (*Response, error) {
	rec := head.Body
	age := now.Sub(rec.CreatedAt)
	switch {
	case age >= Retention, rec.State == stateReleased, rec.State == stateCompacted:
		// Expired, or released by a request that failed: the key is free,
		// for any request.
		return nil, nil
	case string(rec.Fingerprint) != string(fingerprint):
		return nil, ErrKeyReused
	case rec.State == stateDone:
		return &Response{Status: rec.Status, Location: rec.Location, Owner: rec.Owner, Body: rec.Body, id: head.ID}, nil
	case age < StaleClaim:
		return nil, ErrInProgress
	}
	// The claim of a request that died: take it over.
	return nil, nil
}

// Complete stores the answer of a claimed request: its status, its Location
// header (for a 201) and its body sealed with owner, the cipher of the
// customer the answer belongs to. It returns ErrClaimLost when a later
// request took the claim over meanwhile.
func (s *Store) Complete(ctx context.Context, cl *Claim, status int, location string, body []byte, owner *crypto.Cipher) error {
	if owner == nil {
		return errors.New("idempotency complete: no owner cipher")
	}
	g := *cl.gen
	sealed, err := owner.Seal(field(g.ID), body)
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	g.Body.State, g.Body.Status, g.Body.Location, g.Body.Owner, g.Body.Body = stateDone, status, location, owner.CustomerID(), sealed
	if err := s.chain.Put(ctx, &g); err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	// Written first, checked after: every take-over inserted before this
	// read is seen. One inserted after it decided on a read from before the
	// Put (this claim looked dead): its request runs again, and its answer
	// is the one replayed from then on, as if this request had died.
	switch _, err := s.chain.Get(ctx, g.Name, g.N+1); {
	case errors.Is(err, store.ErrNotFound):
		cl.done = true
		return nil
	case err != nil:
		return fmt.Errorf("idempotency complete: %w", err)
	}
	// Taken over: the answer is never replayed, so keep none of it.
	if err := s.release(ctx, cl); err != nil {
		return fmt.Errorf("idempotency complete: %w (%w)", ErrClaimLost, err)
	}
	return fmt.Errorf("idempotency complete: %w", ErrClaimLost)
}

// Release gives up a claim whose request did not succeed, so a retry runs
// it again. It marks the claim's own generation released: a claim taken
// over meanwhile is an older generation, and the new one stays untouched. A
// completed claim is left as it is.
func (s *Store) Release(ctx context.Context, cl *Claim) error {
	if cl.done {
		return nil
	}
	if err := s.release(ctx, cl); err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	return nil
}

func (s *Store) release(ctx context.Context, cl *Claim) error {
	g := *cl.gen
	g.Body = record{Fingerprint: g.Body.Fingerprint, State: stateReleased, CreatedAt: g.Body.CreatedAt}
	return s.chain.Put(ctx, &g)
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

// field is the sealed answer's associated data: the generation's _id, so an
// answer copied into another generation or key does not open.
func field(id string) crypto.Field {
	return crypto.Field{Collection: collection, DocumentID: id, Name: "body"}
}
