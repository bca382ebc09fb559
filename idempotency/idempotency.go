// Package idempotency keeps the Idempotency-Key records of create routes: a
// retry with the same key and the same request within 24 hours gets the
// first answer again. Records are scoped to the caller; the stored answer is
// sealed under the key of the customer it belongs to (it carries personal
// data), so shredding that customer makes it unreadable too.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
)

// Sentinel errors.
var (
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	ErrKeyReused  = errors.New("idempotency: key reused with another request")
	ErrInvalidKey = errors.New("idempotency: invalid key")
)

// Retention is how long an answer is replayed.
const Retention = 24 * time.Hour

// staleClaim is how long an unfinished claim blocks retries: past it, the
// request that claimed the key is taken to have died.
const staleClaim = time.Minute

const collection = "idempotency"

// Store keeps records in one collection. It is safe for concurrent use.
type Store struct {
	coll *mongo.Collection
	now  func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the store's clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewStore returns a Store over coll.
func NewStore(coll *mongo.Collection, opts ...Option) *Store {
	s := &Store{coll: coll, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

type record struct {
	ID          string    `bson:"_id"`
	Fingerprint []byte    `bson:"fingerprint"`
	Done        bool      `bson:"done"`
	CreatedAt   time.Time `bson:"createdAt"`
	Status      int       `bson:"status,omitempty"`
	Location    string    `bson:"location,omitempty"`
	Owner       string    `bson:"owner,omitempty"` // the customer whose key seals Body
	Body        []byte    `bson:"body,omitempty"`  // sealed
}

// Response is a stored answer.
type Response struct {
	Status   int
	Location string
	Body     []byte
	Owner    string
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

// Fingerprint identifies a request: method, path (with its ids) and body.
func Fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, path)
	h.Write(body)
	return h.Sum(nil)
}

func recordID(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// Begin claims (scope, key) for a request. It returns a claim to run it, or
// the stored answer to replay (with a nil claim), or ErrInProgress,
// ErrKeyReused or ErrInvalidKey.
func (s *Store) Begin(ctx context.Context, scope, key string, fingerprint []byte) (*Claim, *Response, error) {
	if !ValidKey(key) {
		return nil, nil, ErrInvalidKey
	}
	id := recordID(scope, key)
	now := s.now().UTC().Truncate(time.Millisecond)
	for attempt := 0; attempt < 3; attempt++ {
		rec := record{ID: id, Fingerprint: fingerprint, CreatedAt: now}
		_, err := s.coll.InsertOne(ctx, rec)
		if err == nil {
			return &Claim{id: id, createdAt: now}, nil, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		var old record
		err = s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&old)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // released meanwhile: try to claim again
		}
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		expired := now.Sub(old.CreatedAt) >= Retention
		stale := !old.Done && now.Sub(old.CreatedAt) >= staleClaim
		if !expired && !stale {
			switch {
			case string(old.Fingerprint) != string(fingerprint):
				return nil, nil, ErrKeyReused
			case !old.Done:
				return nil, nil, ErrInProgress
			default:
				return nil, &Response{Status: old.Status, Location: old.Location, Body: old.Body, Owner: old.Owner}, nil
			}
		}
		// Take over an expired record or a dead claim, unless someone else just did.
		res, err := s.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "createdAt", Value: old.CreatedAt}}, rec)
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency begin: %w", err)
		}
		if res.MatchedCount == 1 {
			return &Claim{id: id, createdAt: now}, nil, nil
		}
	}
	return nil, nil, ErrInProgress
}

// Complete stores the answer of a claimed request, its body sealed with the
// owner's cipher.
func (s *Store) Complete(ctx context.Context, cl *Claim, status int, location string, body []byte, owner *crypto.Cipher) error {
	sealed, err := owner.Seal(field(cl.id), body)
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	_, err = s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: cl.id}, {Key: "createdAt", Value: cl.createdAt}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "done", Value: true}, {Key: "status", Value: status}, {Key: "location", Value: location},
			{Key: "owner", Value: owner.CustomerID()}, {Key: "body", Value: sealed},
		}}})
	if err != nil {
		return fmt.Errorf("idempotency complete: %w", err)
	}
	return nil
}

// Release drops a claim whose request did not succeed, so a retry runs it
// again.
func (s *Store) Release(ctx context.Context, cl *Claim) error {
	_, err := s.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: cl.id}, {Key: "createdAt", Value: cl.createdAt}, {Key: "done", Value: false}})
	if err != nil {
		return fmt.Errorf("idempotency release: %w", err)
	}
	return nil
}

// Open unseals a replayed answer with its owner's cipher.
func Open(r *Response, owner *crypto.Cipher, scope, key string) ([]byte, error) {
	return owner.Open(field(recordID(scope, key)), r.Body)
}

func field(id string) crypto.Field {
	return crypto.Field{Collection: collection, DocumentID: id, Name: "body"}
}
