package messages

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
)

// Config is what the messaging service needs.
type Config struct {
	// Control is the control database (number routes, sub-account routes,
	// the outbox's pointers).
	Control *mongo.Database
	// Tenant returns the handle of a customer's data.
	Tenant func(customerID string) *store.Tenant
	// Cipher returns a customer's cipher, refusing a shredded customer
	// (tenants.Service.Cipher).
	Cipher func(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Account returns a customer's messaging account
	// (tenants.Service.MessagingAccount).
	Account func(ctx context.Context, partnerID, customerID string) (tenants.MessagingAccount, error)
	// Route returns the customer whose sub-account a Twilio callback names
	// by its AccountSid, or tenants.ErrNotFound
	// (tenants.Service.SubaccountCustomer). Without it every callback is
	// refused.
	Route func(ctx context.Context, accountSID string) (customerID string, err error)
	// Contacts opens customers' contacts.
	Contacts *contacts.Service
	// Events holds the pushed events of messages and opt-outs; nil pushes
	// none.
	Events Events
	// Twilio is the port to numbers and messages.
	Twilio Twilio
	// PublicURL is SWITCHBOARD_PUBLIC_URL: webhooks are given to Twilio
	// under it, and their signatures are checked over it.
	PublicURL string
	// Secret derives ids from Idempotency-Keys and MessageSids and keys the
	// number routes (crypto.MasterKey.DeriveKey).
	Secret []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data.
	Logger *slog.Logger
	// AttemptLease is how long a send attempt holds off other senders
	// before it counts as dead and is reconciled (default 45 s: three
	// times Twilio's 15 s timeout; at least MinAttemptLease). An attempt
	// calls Twilio only in the first third of its lease.
	AttemptLease time.Duration
	// RetryBase is the first backoff after a Twilio 429 (default 1 s;
	// doubling up to a minute).
	RetryBase time.Duration
}

// Service is the messaging domain.
type Service struct {
	cfg      Config
	numbers  *ttl.Cache[string, []numberDoc]              // customer → its numbers, oldest first
	accounts *ttl.Cache[string, tenants.MessagingAccount] // customer → its account, for webhooks and the sender
	routes   *ttl.Cache[string, string]                   // AccountSid → customer (never changes)
	unknown  *ttl.Cache[string, struct{}]                 // AccountSids that are no customer's, for unknownTTL
	wake     chan job                                     // the sender's hand-off
	// holdBeforeCheck, set by tests alone (export_test.go), runs after an
	// attempt's claim and before its pre-create check (cleared).
	holdBeforeCheck func(messageID string)
	// holdBeforeRedact, when set (tests), runs between a redaction's job
	// and the redaction itself.
	holdBeforeRedact func(messageID string)
}

// MinAttemptLease is the shortest lease of a send attempt.
const MinAttemptLease = 9 * time.Second

// accountTTL is how long webhooks and the sender trust a customer's status
// and sub-account: as long as tokens trust a status (5 s), and this
// process's own changes clear it at once (Forget).
const accountTTL = 5 * time.Second

// unknownTTL is how long a callback's AccountSid that routes to no
// customer is taken as unknown without another read: short, since an
// activation in another process may route it any moment (this process's
// own activations forget them at once: Forget).
const unknownTTL = 10 * time.Second

// NewService returns the messaging service.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AttemptLease == 0 {
		cfg.AttemptLease = 45 * time.Second
	}
	// Reconciliation tells an attempt's message at Twilio by its creation
	// time, which Twilio gives in whole seconds (see reconcile): shorter
	// leases could not tell it from the next attempt's.
	cfg.AttemptLease = max(cfg.AttemptLease, MinAttemptLease)
	if cfg.RetryBase == 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.Route == nil {
		cfg.Route = func(context.Context, string) (string, error) { return "", tenants.ErrNotFound }
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	return &Service{cfg: cfg,
		numbers:  ttl.New[string, []numberDoc](10_000, 5*time.Second, cfg.Now),
		accounts: ttl.New[string, tenants.MessagingAccount](10_000, accountTTL, cfg.Now),
		routes:   ttl.New[string, string](100_000, time.Hour, cfg.Now),
		unknown:  ttl.New[string, struct{}](10_000, unknownTTL, cfg.Now),
		wake:     make(chan job, 4096),
	}
}

// Forget drops what this process holds of a customer's status: its
// lifecycle changed (tenants.Config.OnChange). The AccountSids known to be
// no customer's go too: an activation may have just routed one.
func (s *Service) Forget(customerID string) {
	s.accounts.Remove(customerID)
	s.unknown.Purge()
}

// accountOf returns a customer's messaging account, through the cache.
func (s *Service) accountOf(ctx context.Context, customerID string) (tenants.MessagingAccount, error) {
	if a, ok := s.accounts.Get(customerID); ok {
		return a, nil
	}
	a, err := s.cfg.Account(ctx, "", customerID)
	if err != nil {
		return a, err
	}
	s.accounts.Add(customerID, a)
	return a, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// Handle is bound to one customer's database and key.
type Handle struct {
	s          *Service
	customerID string
	db         *store.Tenant
	cipher     *crypto.Cipher
	docs       *store.Versioned[messageDoc, struct{}]
	optOuts    *store.Versioned[optOutDoc, struct{}]
	contacts   *contacts.Handle
}

// Open returns the handle of one customer (ErrDataShredded once shredded).
func (s *Service) Open(ctx context.Context, customerID string) (*Handle, error) {
	c, err := s.cfg.Cipher(ctx, customerID)
	if err != nil {
		return nil, err
	}
	return s.OpenWith(ctx, customerID, c)
}

// OpenWith returns the handle of a customer whose cipher the caller has.
func (s *Service) OpenWith(ctx context.Context, customerID string, c *crypto.Cipher) (*Handle, error) {
	ch, err := s.cfg.Contacts.OpenWith(ctx, customerID, c)
	if err != nil {
		return nil, err
	}
	db := s.cfg.Tenant(customerID)
	h := &Handle{s: s, customerID: customerID, db: db, cipher: c, contacts: ch,
		docs: &store.Versioned[messageDoc, struct{}]{
			Docs: db.Collection("messages"), Claims: db.Collection("message_claims"),
			Entries: db.Collection("indexes"), Index: messageEntries,
			Version: func(d *messageDoc) int64 { return d.Version }, Now: s.cfg.Now,
		},
		optOuts: &store.Versioned[optOutDoc, struct{}]{
			Docs: db.Collection("opt_outs"), Claims: db.Collection("opt_out_claims"),
			Version: func(d *optOutDoc) int64 { return d.Version }, Now: s.cfg.Now,
		},
	}
	h.docs.Hold = h.holdMessageEvents
	return h, nil
}

// derivedID is a UUID (RFC 9562 version 8) derived from parts under the
// service's secret: the same parts give the same id, and nobody without
// the secret can tell the parts from it.
func (s *Service) derivedID(parts ...string) string {
	m := hmac.New(sha256.New, s.cfg.Secret)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	var u uuid.UUID
	copy(u[:], m.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x80 // version 8
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u.String()
}

// routeID keys a phone number's route in the control database: a keyed
// hash, so the control database holds no number in the clear.
func (s *Service) routeID(e164 string) string {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte("number route\x00" + e164))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Service) control(name string) *mongo.Collection { return s.cfg.Control.Collection(name) }

// Control collections.
const (
	numberRouteColl = "number_routes"
	outboxColl      = "outbox"
)

// numberRoute maps a phone number (its keyed hash) to its customer.
type numberRoute struct {
	ID         string    `bson:"_id"` // routeID(number)
	CustomerID string    `bson:"customerId"`
	AccountSID string    `bson:"accountSid"`
	NumberID   string    `bson:"numberId"`
	At         time.Time `bson:"at"`
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func idFilter(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }
