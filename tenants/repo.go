package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"

	"github.com/switchboard/switchboard"
)

// Collections of the control database that this package owns.
const (
	partnersColl  = "partners"
	customersColl = "customers"
	eventsColl    = "events"
	locksColl     = "locks"
	cleanupsColl  = "cleanups"
	canariesColl  = "canaries"
)

// customerDoc is a customer as stored. Sealed fields hold crypto.Cipher
// output; nothing personal is stored in the clear.
type customerDoc struct {
	ID            string        `bson:"_id"`
	PartnerID     string        `bson:"partnerId"`
	Space         string        `bson:"space"`
	IndustryID    string        `bson:"industryId"`
	Status        Status        `bson:"status"`
	Version       int64         `bson:"version"`
	Label         []byte        `bson:"label,omitempty"`
	ContactInfo   *contactDoc   `bson:"contactInfo,omitempty"`
	Twilio        *twilioDoc    `bson:"twilio,omitempty"`
	Retention     *retentionDoc `bson:"retention,omitempty"`
	CreatedAt     time.Time     `bson:"createdAt"`
	UpdatedAt     time.Time     `bson:"updatedAt"`
	ActivatedAt   *time.Time    `bson:"activatedAt,omitempty"`
	DeactivatedAt *time.Time    `bson:"deactivatedAt,omitempty"`
	TerminatedAt  *time.Time    `bson:"terminatedAt,omitempty"`
	ShreddedAt    *time.Time    `bson:"shreddedAt,omitempty"`
	Erasure       *erasureDoc   `bson:"erasure,omitempty"`
}

// contactDoc keeps the country plain (the platform needs it) and seals the
// rest of the contact info as one value.
type contactDoc struct {
	Country string `bson:"country"`
	Sealed  []byte `bson:"sealed"`
}

type twilioDoc struct {
	AccountSID string           `bson:"accountSid"`
	Status     SubaccountStatus `bson:"status"`
	AuthToken  []byte           `bson:"authToken,omitempty"` // sealed
}

type retentionDoc struct {
	Strategy Strategy   `bson:"strategy"`
	Period   *int       `bson:"period,omitempty"`
	ShredAt  *time.Time `bson:"shredAt,omitempty"`
}

// eventDoc is the audit event a change keeps in its claim: the claim of
// version n of customer X (_id "X:n" in the events collection) holds the
// customer's whole state at n and the event of the change to n. So there is
// exactly one event per version, written by the same insert that decided
// the change, and a customer's events are found by _id from its version.
type eventDoc struct {
	ID   string         `bson:"id"` // the event's own id (UUIDv7), as the API shows it
	Type string         `bson:"type"`
	At   time.Time      `bson:"at"` // the change's updatedAt
	Data map[string]any `bson:"data"`
}

// customerClaim is one version of a customer with the event of its change.
type customerClaim = store.Claim[customerDoc, eventDoc]

type partnerDoc struct {
	ID        string    `bson:"_id"`
	Name      string    `bson:"name"`
	KeyPrefix string    `bson:"keyPrefix,omitempty"` // a key from before partner_keys
	KeyHash   []byte    `bson:"keyHash,omitempty"`
	CreatedAt time.Time `bson:"createdAt"`
}

// cleanupDoc marks a shredded customer whose database drop or sub-account
// close is not confirmed yet: the purge finishes it. Only its _id matters.
type cleanupDoc struct {
	ID string `bson:"_id"`
	// The key about to be destroyed, for the erasure record: a run killed
	// after the key is gone finds them here.
	KeyID       string `bson:"keyId,omitempty"`
	MasterKeyID string `bson:"masterKeyId,omitempty"`
	// Documents is how many documents of the customer the shred deletes,
	// counted before its first delete.
	Documents *int64 `bson:"documents,omitempty"`
}

// canaryDoc is a value sealed under a customer's key when it is registered
// (or, for a customer from before canaries, before its key is destroyed).
// After the key is destroyed the shred opens it through the keyring, and
// must fail: that is the verification of the erasure.
type canaryDoc struct {
	ID     string `bson:"_id"` // the customer id
	Sealed []byte `bson:"sealed"`
}

// erasureDoc records how a customer's key was destroyed and checked; it
// stays with the tombstone (no personal data).
type erasureDoc struct {
	KeyID          string    `bson:"keyId,omitempty"`
	MasterKeyID    string    `bson:"masterKeyId,omitempty"`
	KeyDestroyedAt time.Time `bson:"keyDestroyedAt"`
	Verification   string    `bson:"verification"` // canary-open-failed
	VerifiedAt     time.Time `bson:"verifiedAt"`
}

// newCustomers builds the versioned customers collection: documents in
// customers, their claims (with the events) in events, side-effect gates
// in locks (activate, deactivate and terminate call Twilio).
func newCustomers(control *mongo.Database, now func() time.Time) *store.Versioned[customerDoc, eventDoc] {
	return &store.Versioned[customerDoc, eventDoc]{
		Docs:    store.Plain(control.Collection(customersColl)),
		Claims:  store.Plain(control.Collection(eventsColl)),
		Gates:   store.Plain(control.Collection(locksColl)),
		Entries: store.Plain(control.Collection(customerIndexColl)),
		Index:   customerEntries,
		Version: func(d *customerDoc) int64 { return d.Version },
		Now:     now,
	}
}

func (s *Service) customersColl() *mongo.Collection { return s.cfg.Control.Collection(customersColl) }
func (s *Service) cleanups() *mongo.Collection      { return s.cfg.Control.Collection(cleanupsColl) }

// find loads a customer by id at its latest claim (a change a crash left
// unapplied is applied first: a customer's state decides what its tokens
// may do), scoped to a partner unless partnerID is "".
func (s *Service) find(ctx context.Context, partnerID, id string) (*customerDoc, error) {
	doc, err := s.customers.Latest(ctx, id)
	if err != nil {
		return nil, storeErr("find customer", err)
	}
	if partnerID != "" && doc.PartnerID != partnerID {
		return nil, ErrNotFound
	}
	return doc, nil
}

// storeErr turns the claim primitive's errors into this package's.
func storeErr(op string, err error) error {
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		return &switchboard.VersionConflictError{Current: ce.Current}
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, store.ErrBusy):
		return fmt.Errorf("%s: %w", op, ErrBusy)
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidTransition), errors.Is(err, switchboard.ErrVersionConflict):
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// A mutation computes a customer's next state (and its event) from the
// current one, or returns nil for a no-op. It may call Twilio: it runs only
// once the change's gate is taken (see store.Versioned).
type mutation func(cur *customerDoc, now time.Time) (next *customerDoc, typ string, data map[string]any, err error)

// update changes one customer of partnerID ("" for any partner) from
// version expected (AnyVersion: the latest). check runs first, on every
// state read, and refuses transitions the lifecycle does not draw or tells
// a no-op, before any gate is taken or Twilio is called.
func (s *Service) update(ctx context.Context, op, partnerID, id string, expected int64,
	check func(cur *customerDoc) (noop bool, err error), m mutation) (*customerDoc, error) {
	doc, err := s.customers.Update(ctx, id, expected, func(cur *customerDoc) (*customerDoc, eventDoc, error) {
		now := s.now()
		nxt, typ, data, err := m(cur, now)
		if err != nil || nxt == nil {
			return nil, eventDoc{}, err
		}
		ev, err := newEvent(typ, nxt.UpdatedAt, data)
		return nxt, ev, err
	}, store.UpdateOptions[customerDoc]{
		Visible: func(cur *customerDoc) error {
			if partnerID != "" && cur.PartnerID != partnerID {
				return ErrNotFound
			}
			return nil
		},
		Check: check,
	})
	if err != nil {
		return nil, storeErr(op, err)
	}
	if s.cfg.OnChange != nil {
		s.cfg.OnChange(id)
	}
	return doc, nil
}
