package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"
	"github.com/google/uuid"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// EventExported is the event of an export: no change, so it carries the
// customer's current version, and the version stays.
const EventExported = "customer.exported"

const exportsColl = "exports"

// exportDoc is one export's event. An export changes nothing, so it cannot
// claim a version: exports of version v are the generations of the chain
// "<customer>:<v>" in the exports collection, listed after the event of v.
type exportDoc struct {
	EventID   string    `bson:"eventId"`
	At        time.Time `bson:"at"`
	Recipient string    `bson:"recipient"`
}

func (s *Service) exports() store.Chain[exportDoc] {
	return store.Chain[exportDoc]{Coll: store.Plain(s.cfg.Control.Collection(exportsColl))}
}

// Export is what an export of one customer needs: its view, its cipher (for
// its contacts) and the recipient the stream is encrypted to.
type Export struct {
	Customer  Customer
	Cipher    *crypto.Cipher
	Recipient *age.X25519Recipient
}

// BeginExport checks an export request: recipient must be an age X25519
// recipient (age1…; else a ValidationError naming recipient), the customer
// one of p's and not SHREDDED (ErrDataShredded).
func (s *Service) BeginExport(ctx context.Context, p Partner, id, recipient string) (*Export, error) {
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return nil, switchboard.Invalid("recipient", "must be an age X25519 recipient (age1…)")
	}
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return nil, err
	}
	if doc.Status == StatusShredded {
		return nil, ErrDataShredded
	}
	c, err := s.Cipher(ctx, id)
	if err != nil {
		return nil, err
	}
	view, err := s.view(ctx, doc, c)
	if err != nil {
		return nil, err
	}
	return &Export{Customer: view, Cipher: c, Recipient: r}, nil
}

// StillExportable is checked before an export is completed: a customer
// shredded while its export streamed must not get a complete (readable)
// export; ErrDataShredded then.
func (s *Service) StillExportable(ctx context.Context, x *Export) error {
	st, err := s.Status(ctx, x.Customer.ID)
	if err != nil {
		return err
	}
	if st == StatusShredded {
		return ErrDataShredded
	}
	return nil
}

// RecordExport appends the customer.exported event of a finished export,
// at the customer's current version (the recipient in its data).
func (s *Service) RecordExport(ctx context.Context, x *Export) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	doc, err := s.customers.Latest(ctx, x.Customer.ID)
	if err != nil {
		return storeErr("record export", err)
	}
	if doc.Status == StatusShredded {
		return ErrDataShredded
	}
	name := store.ClaimID(doc.ID, doc.Version)
	body := exportDoc{EventID: id.String(), At: s.now(), Recipient: x.Recipient.String()}
	for n := int64(1); ; n++ {
		_, err := s.exports().Take(ctx, name, n, body)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("record export: %w", err)
		}
	}
}

// exportEvents returns the export events of one version, in order.
func (s *Service) exportEvents(ctx context.Context, customerID string, version int64) ([]Event, error) {
	var out []Event
	name := store.ClaimID(customerID, version)
	for n := int64(1); ; n++ {
		g, err := s.exports().Get(ctx, name, n)
		if errors.Is(err, store.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		out = append(out, Event{ID: g.Body.EventID, CustomerID: customerID, Type: EventExported, At: g.Body.At.UTC(),
			Version: version, Data: map[string]any{"recipient": g.Body.Recipient}})
	}
}

// EachEvent calls fn for every event of one of p's customers, oldest first.
func (s *Service) EachEvent(ctx context.Context, p Partner, id string, fn func(Event) error) error {
	cursor := ""
	for {
		page, next, err := s.Events(ctx, p, id, PageQuery{Limit: 200, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}
