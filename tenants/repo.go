package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of the control database that this package owns.
const (
	partnersColl  = "partners"
	customersColl = "customers"
	eventsColl    = "events"
	locksColl     = "locks"
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
	// LastEvent is the event of the latest change, written with the change
	// itself so that a crash before it reaches the events collection cannot
	// lose it: every later load copies it there first.
	LastEvent *eventDoc `bson:"lastEvent,omitempty"`
	// CleanupPending marks a shredded customer whose database drop or
	// sub-account close has not been confirmed yet; the purge finishes it.
	CleanupPending bool `bson:"cleanupPending,omitempty"`
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

type eventDoc struct {
	ID         string         `bson:"_id"`
	CustomerID string         `bson:"customerId"`
	Type       string         `bson:"type"`
	At         time.Time      `bson:"at"`
	Version    int64          `bson:"version"`
	Data       map[string]any `bson:"data"`
}

type partnerDoc struct {
	ID        string    `bson:"_id"`
	Name      string    `bson:"name"`
	KeyPrefix string    `bson:"keyPrefix"`
	KeyHash   []byte    `bson:"keyHash"`
	CreatedAt time.Time `bson:"createdAt"`
}

type leaseDoc struct {
	ID        string    `bson:"_id"`
	Owner     string    `bson:"owner"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

func (s *Service) customers() *mongo.Collection { return s.cfg.Control.Collection(customersColl) }
func (s *Service) events() *mongo.Collection    { return s.cfg.Control.Collection(eventsColl) }

// find loads a customer by id, scoped to a partner unless partnerID is "".
// It first copies a pending event to the events collection.
func (s *Service) find(ctx context.Context, partnerID, id string) (*customerDoc, error) {
	// Filter on _id alone and check the owner here: the embedded engine
	// uses its primary key only for a filter that is exactly {_id}.
	var doc customerDoc
	if err := s.customers().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("find customer: %w", err)
	}
	if partnerID != "" && doc.PartnerID != partnerID {
		return nil, ErrNotFound
	}
	if err := s.flushEvent(ctx, doc.LastEvent); err != nil {
		return nil, err
	}
	return &doc, nil
}

// commit stores next in place of cur if nobody changed cur meanwhile, and
// records ev as the change's event. next.Version must be cur.Version+1.
func (s *Service) commit(ctx context.Context, cur, next *customerDoc, ev *eventDoc) error {
	next.LastEvent = ev
	res, err := s.customers().ReplaceOne(ctx, bson.D{{Key: "_id", Value: cur.ID}, {Key: "version", Value: cur.Version}}, next)
	if err != nil {
		return fmt.Errorf("store customer: %w", err)
	}
	if res.MatchedCount == 0 {
		latest, err := s.find(ctx, "", cur.ID)
		if err != nil {
			return err
		}
		return &VersionConflictError{Current: latest.Version}
	}
	return s.flushEvent(ctx, ev)
}

// flushEvent copies ev to the events collection; copying it twice is
// harmless, and an event this process already copied is not tried again.
func (s *Service) flushEvent(ctx context.Context, ev *eventDoc) error {
	if ev == nil || s.flushed.Has(ev.ID) {
		return nil
	}
	if _, err := s.events().InsertOne(ctx, ev); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("append event: %w", err)
	}
	s.flushed.Add(ev.ID)
	return nil
}

// takeLease claims name for this owner until now+TTL, or returns
// ErrLeaseHeld while another owner's lease has not expired.
func (s *Service) takeLease(ctx context.Context, name, owner string) error {
	now := s.now()
	lease := leaseDoc{ID: name, Owner: owner, ExpiresAt: now.Add(s.cfg.LeaseTTL)}
	_, err := s.cfg.Control.Collection(locksColl).InsertOne(ctx, lease)
	if err == nil {
		return nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("take lease: %w", err)
	}
	res, err := s.cfg.Control.Collection(locksColl).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: name}, {Key: "$or", Value: bson.A{
			bson.D{{Key: "owner", Value: owner}},
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$lte", Value: now}}}},
		}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: owner}, {Key: "expiresAt", Value: lease.ExpiresAt}}}})
	if err != nil {
		return fmt.Errorf("take lease: %w", err)
	}
	if res.MatchedCount == 0 {
		return ErrLeaseHeld
	}
	return nil
}

func (s *Service) releaseLease(ctx context.Context, name, owner string) {
	_, err := s.cfg.Control.Collection(locksColl).DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "owner", Value: owner}})
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "release lease", "lease", name, "err", err)
	}
}

// page runs a find with limit+1 to learn whether another page follows.
func page[T any](ctx context.Context, c *mongo.Collection, filter bson.D, sort bson.D, limit int) ([]T, bool, error) {
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, false, err
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}
