package tenants

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/store"

	"github.com/switchboard/switchboard"
)

// CustomerData is where a customer's documents are kept (store.DB): its
// ranges, counted and deleted by the shred.
type CustomerData interface {
	CountCustomerData(ctx context.Context, customerID string) (int64, error)
	DeleteCustomerData(ctx context.Context, customerID string) (int64, error)
}

// Config holds what a Service needs. Control is the control database
// (partners, customers, events, locks); Data counts and deletes a
// customer's stored documents when it is shredded.
type Config struct {
	Control *mongo.Database
	// Events holds the partner events of lifecycle steps; nil pushes none.
	Events  Events
	Keyring Keyring
	Twilio  Twilio
	Data    CustomerData
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LeaseTTL bounds how long a purge lease blocks other runs; 0 means 5 minutes.
	LeaseTTL time.Duration
	// Certificates, if set, signs the erasure certificate each shred issues;
	// Issuer (the public URL) and Version go into it.
	Certificates CertificateSigner
	Issuer       string
	Version      string
	// ScrubKeys, if set, makes the keyring's files forget a destroyed key at
	// once (store.DB.ScrubKeys); a shred fails, and is retried, until it did.
	ScrubKeys func(ctx context.Context) error
	// OnChange, if set, is told the id of every customer whose state this
	// service changed (token checks forget its cached status at once).
	OnChange func(customerID string)
}

// Service runs the customer lifecycle. It is safe for concurrent use.
type Service struct {
	cfg       Config
	customers *store.Versioned[customerDoc, eventDoc]
	// partners remembers recently verified API keys, by the SHA-256 of the
	// whole key, so every request does not cost a database read.
	partners *ttl.Cache[string, Partner]
}

// NewService returns a Service over cfg.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, customers: newCustomers(cfg.Control, cfg.Now),
		partners: ttl.New[string, Partner](10_000, authTTL, cfg.Now)}
	if cfg.Events != nil {
		s.customers.Hold = s.holdEvents
	}
	return s
}

// now is the clock at the precision the database keeps (milliseconds, UTC).
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// RegisterInput is the body of POST /v1/customers. PartnerID, if set, must be
// the caller's own id.
type RegisterInput struct {
	Space      string
	IndustryID string
	Label      string
	PartnerID  *string
}

// RetentionInput is the retention of a terminate request, before validation.
type RetentionInput struct {
	Strategy string
	Period   *int
}

// ListQuery selects a page of customers. Status "" means every status;
// Limit is already within 1..200; Cursor is "" for the first page.
type ListQuery struct {
	Status Status
	Limit  int
	Cursor string
}

// PageQuery selects a page of a list. Limit is already within 1..200.
type PageQuery struct {
	Limit  int
	Cursor string
}

var spacePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// Sealed fields of a customer document.
func labelField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "label"}
}

func contactInfoField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "contactInfo"}
}

func authTokenField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "twilio.authToken"}
}

// subaccountName is the FriendlyName of a customer's sub-account: it carries
// the customer id (and nothing personal) so a retry can find it again.
func subaccountName(customerID string) string { return "switchboard customer " + customerID }

func newEvent(typ string, at time.Time, data map[string]any) (eventDoc, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return eventDoc{}, err
	}
	if data == nil {
		data = map[string]any{}
	}
	return eventDoc{ID: id.String(), Type: typ, At: at, Data: data}, nil
}

// Register creates a customer of p in status REGISTERED, with its own key.
func (s *Service) Register(ctx context.Context, p Partner, in RegisterInput) (Customer, error) {
	var verr switchboard.ValidationError
	if !spacePattern.MatchString(in.Space) {
		verr.Add("space", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	if in.IndustryID == "" {
		verr.Add("industryId", "is required")
	} else if !knownIndustry(in.IndustryID) {
		verr.Add("industryId", "is not in the industry catalogue")
	}
	label := strings.TrimSpace(in.Label)
	if n := utf8.RuneCountInString(label); n < 1 || n > 200 {
		verr.Add("label", "must be 1 to 200 characters")
	}
	if in.PartnerID != nil && *in.PartnerID != p.ID {
		verr.Add("partnerId", "must be the calling partner's own id")
	}
	if err := verr.Err(); err != nil {
		return Customer{}, err
	}
	// A taken space is found by the unique index on insert, not by a query
	// first: a query would scan every customer on the embedded engine.
	uid, err := uuid.NewV7()
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	id := uid.String()
	// The key comes first: a crash after it leaves an unused key, never a
	// customer without one.
	if err := s.cfg.Keyring.Create(ctx, id); err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	c, err := s.cfg.Keyring.Cipher(ctx, id)
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	// The canary, sealed now: after the key is destroyed, the shred opens
	// it and must fail.
	if err := s.ensureCanary(ctx, c); err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	sealed, err := c.Seal(labelField(id), []byte(label))
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	now := s.now()
	doc := &customerDoc{
		ID: id, PartnerID: p.ID, Space: in.Space, IndustryID: in.IndustryID,
		Status: StatusRegistered, Version: 1, Label: sealed,
		CreatedAt: now, UpdatedAt: now,
	}
	ev, err := newEvent(EventRegistered, now, map[string]any{"space": in.Space, "industryId": in.IndustryID})
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	if err := s.customers.Create(ctx, id, doc, ev); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			// Ambiguous: the claim may stand and be applied later, so the
			// key stays (at worst unused).
			return Customer{}, fmt.Errorf("register customer: %w", err)
		}
		// The space is taken and the claim given back: the key belongs to
		// no customer now.
		if derr := s.cfg.Keyring.Destroy(context.WithoutCancel(ctx), id); derr != nil {
			s.cfg.Logger.WarnContext(ctx, "destroy unused customer key", "customerId", id, "err", derr)
		}
		return Customer{}, ErrSpaceTaken
	}
	return s.view(ctx, doc, c)
}

// Customer returns one of p's customers.
func (s *Service) Customer(ctx context.Context, p Partner, id string) (Customer, error) {
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return Customer{}, err
	}
	return s.view(ctx, doc, nil)
}

// Cipher returns the cipher of a customer whose data may still be read: an
// error matching ErrDataShredded once it is SHREDDED (or its key is gone),
// whatever a cache (a token's verified status among them) still holds, and
// ErrNotFound for no such customer. It is the only way a customer's key
// leaves this package: callers never check the status themselves.
func (s *Service) Cipher(ctx context.Context, customerID string) (*crypto.Cipher, error) {
	st, err := s.Status(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if st == StatusShredded {
		return nil, ErrDataShredded
	}
	c, err := s.cfg.Keyring.Cipher(ctx, customerID)
	if errors.Is(err, crypto.ErrKeyNotFound) {
		return nil, ErrDataShredded
	}
	if err != nil {
		return nil, fmt.Errorf("customer cipher: %w", err)
	}
	return c, nil
}

// view opens a customer document for the API. c may be nil; it is fetched
// when something sealed must be opened. A SHREDDED customer (or one whose key
// a half-finished purge already destroyed) shows null label and contact info.
func (s *Service) view(ctx context.Context, doc *customerDoc, c *crypto.Cipher) (Customer, error) {
	out := Customer{
		ID: doc.ID, PartnerID: doc.PartnerID, Space: doc.Space, IndustryID: doc.IndustryID,
		Status: doc.Status, Version: doc.Version,
		CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
		ActivatedAt: switchboard.UTC(doc.ActivatedAt), DeactivatedAt: switchboard.UTC(doc.DeactivatedAt),
		TerminatedAt: switchboard.UTC(doc.TerminatedAt), ShreddedAt: switchboard.UTC(doc.ShreddedAt),
	}
	if doc.Twilio != nil {
		out.Twilio = &TwilioAccount{AccountSID: doc.Twilio.AccountSID, Status: doc.Twilio.Status}
	}
	if doc.Retention != nil {
		out.Retention = &Retention{Strategy: doc.Retention.Strategy, Period: doc.Retention.Period, ShredAt: switchboard.UTC(doc.Retention.ShredAt)}
	}
	if doc.Status == StatusShredded || (doc.Label == nil && doc.ContactInfo == nil) {
		return out, nil
	}
	if c == nil {
		var err error
		c, err = s.cfg.Keyring.Cipher(ctx, doc.ID)
		if errors.Is(err, crypto.ErrKeyNotFound) {
			return out, nil
		}
		if err != nil {
			return Customer{}, fmt.Errorf("open customer: %w", err)
		}
	}
	if doc.Label != nil {
		b, err := c.Open(labelField(doc.ID), doc.Label)
		if err != nil {
			return Customer{}, fmt.Errorf("open customer label: %w", err)
		}
		label := string(b)
		out.Label = &label
	}
	if doc.ContactInfo != nil {
		info, err := openContactInfo(c, doc.ID, doc.ContactInfo.Sealed)
		if err != nil {
			return Customer{}, fmt.Errorf("open customer contact info: %w", err)
		}
		out.ContactInfo = info
	}
	return out, nil
}

// Status returns a customer's lifecycle status at its latest claim
// (ErrNotFound for no such customer). Token verification reads it through a
// short cache.
func (s *Service) Status(ctx context.Context, customerID string) (Status, error) {
	doc, err := s.find(ctx, "", customerID)
	if err != nil {
		return "", err
	}
	return doc.Status, nil
}
