package contacts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/store"
)

// Service opens handles on customers' contacts.
type Service struct {
	// Cipher returns a customer's cipher, refusing shredded customers.
	Cipher func(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Database returns the handle of a customer's own database.
	Database func(customerID string) *mongo.Database
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	indexed *ttl.Cache[string, struct{}] // customers whose indexes this process ensured
	flushed *ttl.Cache[string, struct{}] // timeline items known to be in the timeline collection
}

// Handle is bound to one customer's database and key: every method is
// scoped to that customer.
type Handle struct {
	db      *mongo.Database
	cipher  *crypto.Cipher
	now     func() time.Time
	flushed *ttl.Cache[string, struct{}]
	docs    *store.Versioned[contactDoc, struct{}]
}

// Open returns the handle of one customer.
func (s *Service) Open(ctx context.Context, customerID string) (*Handle, error) {
	c, err := s.Cipher(ctx, customerID)
	if err != nil {
		return nil, err
	}
	return s.OpenWith(ctx, customerID, c)
}

// OpenWith returns the handle of one customer whose cipher the caller has
// (an export that checked the customer's status).
func (s *Service) OpenWith(ctx context.Context, customerID string, c *crypto.Cipher) (*Handle, error) {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	s.once.Do(func() {
		// Forgetting either only costs an idempotent write.
		s.indexed = ttl.New[string, struct{}](100_000, 24*time.Hour, now)
		s.flushed = ttl.New[string, struct{}](10_000, time.Hour, now)
	})
	db := s.Database(customerID)
	h := &Handle{db: db, cipher: c, now: now, flushed: s.flushed, docs: &store.Versioned[contactDoc, struct{}]{
		Docs:    db.Collection("contacts"),
		Claims:  db.Collection("contact_claims"),
		Version: func(d *contactDoc) int64 { return d.Version },
		Now:     now,
	}}
	if _, done := s.indexed.Get(customerID); !done {
		if err := h.ensureIndexes(ctx); err != nil {
			return nil, err
		}
		s.indexed.Add(customerID, struct{}{})
	}
	return h, nil
}

// ensureIndexes creates the indexes of a customer's database (idempotent).
func (h *Handle) ensureIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll string
		keys bson.D
	}{
		{"contacts", bson.D{{Key: "channelIdx", Value: 1}}},
		{"timeline", bson.D{{Key: "contactId", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}},
	} {
		if _, err := h.db.Collection(ix.coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys}); err != nil {
			return fmt.Errorf("contacts indexes: %w", err)
		}
	}
	return nil
}

// Lookup kinds: the match keys, each unique within a customer.
const (
	KeyEmail      = "email"
	KeyPhone      = "phone"
	KeyCrmID      = "crmId"
	KeyExternalID = "externalId"
)

var lookupKinds = []string{KeyEmail, KeyPhone, KeyCrmID, KeyExternalID}

// Failure codes of upsert items.
const (
	CodeDuplicate = "duplicate"
	CodeNotFound  = "not_found"
	CodeConflict  = "conflict"
)

var errConflict = errors.New("a unique value belongs to another contact")

func (h *Handle) contacts() *mongo.Collection { return h.db.Collection("contacts") }

// contactDocs is the versioned contacts collection: every change of a
// contact is a claim of "<id>:<version>" in contact_claims (store.Versioned).
func (h *Handle) contactDocs() *store.Versioned[contactDoc, struct{}] { return h.docs }
func (h *Handle) lookups() *mongo.Collection                          { return h.db.Collection("lookups") }
func (h *Handle) timeline() *mongo.Collection                         { return h.db.Collection("timeline") }

func (h *Handle) nowMs() time.Time { return h.now().UTC().Truncate(time.Millisecond) }

func (h *Handle) index(kind, value string) []byte { return h.cipher.BlindIndex(kind, value) }

func channelKey(c Channel) string { return c.Type + ":" + c.Address }

// ErrUniqueConflict: a patch would give the contact another contact's
// email, phone, crmId or externalId.
var ErrUniqueConflict = errors.New("value belongs to another contact")
