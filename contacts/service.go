package contacts

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/store"
)

// Service opens handles on customers' contacts.
type Service struct {
	// Cipher returns a customer's cipher, refusing shredded customers.
	Cipher func(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Tenant returns the handle of a customer's data.
	Tenant func(customerID string) *store.Tenant
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Events holds the pushed events of contact changes; nil pushes none.
	Events Events

	once    sync.Once
	flushed *ttl.Cache[string, struct{}] // timeline items known to be in the timeline collection
}

// Handle is bound to one customer's database and key: every method is
// scoped to that customer.
type Handle struct {
	db      *store.Tenant
	cipher  *crypto.Cipher
	now     func() time.Time
	flushed *ttl.Cache[string, struct{}]
	docs    *store.Versioned[contactDoc, struct{}]
	events  Events
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
		// Forgetting one only costs an idempotent write.
		s.flushed = ttl.New[string, struct{}](10_000, time.Hour, now)
	})
	db := s.Tenant(customerID)
	h := &Handle{db: db, cipher: c, now: now, flushed: s.flushed, docs: &store.Versioned[contactDoc, struct{}]{
		Docs:    db.Collection("contacts"),
		Claims:  db.Collection("contact_claims"),
		Entries: db.Collection("indexes"),
		Index:   contactEntries,
		Pending: db.Collection("pending"),
		Version: func(d *contactDoc) int64 { return d.Version },
		Now:     now,
	}, events: s.Events}
	if s.Events != nil {
		h.docs.Hold = h.holdEvents
	}
	return h, nil
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

func (h *Handle) contacts() *store.Coll { return h.db.Collection("contacts") }

// contactDocs is the versioned contacts collection: every change of a
// contact is a claim of "<id>:<version>" in contact_claims (store.Versioned).
func (h *Handle) contactDocs() *store.Versioned[contactDoc, struct{}] { return h.docs }
func (h *Handle) lookups() *store.Coll                                { return h.db.Collection("lookups") }
func (h *Handle) timeline() *store.Coll                               { return h.db.Collection("timeline") }

func (h *Handle) nowMs() time.Time { return h.now().UTC().Truncate(time.Millisecond) }

func (h *Handle) index(kind, value string) []byte { return h.cipher.BlindIndex(kind, value) }

func channelKey(c Channel) string { return c.Type + ":" + c.Address }

// ErrUniqueConflict: a patch would give the contact another contact's
// email, phone, crmId or externalId.
var ErrUniqueConflict = errors.New("value belongs to another contact")
