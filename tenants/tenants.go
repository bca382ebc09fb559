// Package tenants owns partners, customers and their lifecycle: registration,
// activation with a Twilio sub-account, contact info, deactivation,
// termination with a retention strategy, and the purge that shreds a customer
// once its retention ends.
//
// Invariants:
//   - every state change of a customer is one conditional single-document
//     update on {_id, version}; version starts at 1 and grows by one per change;
//   - each change records exactly one lifecycle event carrying the new version
//     (written through the customer document first, so a crash cannot lose it);
//   - a customer's label, contact info and Twilio auth token are stored only
//     sealed under the customer's own key;
//   - no code path opens the data of a SHREDDED customer;
//   - every partner-facing method is scoped to the calling partner: a customer
//     of another partner is ErrNotFound.
package tenants

import (
	"context"
	"time"

	"github.com/switchboard/switchboard/crypto"
)

// Status is a customer's lifecycle state.
type Status string

// The lifecycle states, as API.md draws them.
const (
	StatusRegistered  Status = "REGISTERED"
	StatusActive      Status = "ACTIVE"
	StatusDeactivated Status = "DEACTIVATED"
	StatusTerminated  Status = "TERMINATED"
	StatusShredded    Status = "SHREDDED"
)

// Valid reports whether s is one of the lifecycle states.
func (s Status) Valid() bool {
	switch s {
	case StatusRegistered, StatusActive, StatusDeactivated, StatusTerminated, StatusShredded:
		return true
	}
	return false
}

// Strategy is a retention strategy chosen at termination.
type Strategy string

// The retention strategies.
const (
	NoRetention Strategy = "NO_RETENTION"
	Temporary   Strategy = "TEMPORARY"
	Indefinite  Strategy = "INDEFINITE"
)

// AnyVersion as an expected version skips the optimistic concurrency check.
const AnyVersion int64 = 0

// Partner is a reseller that registers customers through the admin API.
type Partner struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Customer is a tenant as the partner API shows it. Label and ContactInfo
// are opened from their sealed form; both are nil once the customer is
// SHREDDED.
type Customer struct {
	ID            string
	PartnerID     string
	Space         string
	Label         *string
	IndustryID    string
	Status        Status
	Version       int64
	ContactInfo   *ContactInfo
	Twilio        *TwilioAccount
	Retention     *Retention
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ActivatedAt   *time.Time
	DeactivatedAt *time.Time
	TerminatedAt  *time.Time
	ShreddedAt    *time.Time
}

// ContactInfo is a customer's business contact information. Optional fields
// are nil when absent.
type ContactInfo struct {
	BusinessName  string
	SecondaryName *string
	PhoneNumber   *string
	AddressLine1  string
	AddressLine2  *string
	PostalCode    string
	Province      *string
	Country       string
}

// TwilioAccount is the public view of a customer's Twilio sub-account.
type TwilioAccount struct {
	AccountSID string
	Status     SubaccountStatus
}

// Retention is the retention a terminated customer was given. Period is nil
// unless the strategy is TEMPORARY; ShredAt is nil for INDEFINITE.
type Retention struct {
	Strategy Strategy
	Period   *int
	ShredAt  *time.Time
}

// Event is one entry of a customer's lifecycle audit trail. Data never holds
// personal data.
type Event struct {
	ID         string
	CustomerID string
	Type       string
	At         time.Time
	Version    int64
	Data       map[string]any
}

// Lifecycle event types.
const (
	EventRegistered         = "customer.registered"
	EventActivated          = "customer.activated"
	EventContactInfoUpdated = "customer.contact_info_updated"
	EventDeactivated        = "customer.deactivated"
	EventTerminated         = "customer.terminated"
	EventRetentionChanged   = "customer.retention_changed"
	EventShredded           = "customer.shredded"
)

// SubaccountStatus is the status of a Twilio sub-account, in Twilio's words.
type SubaccountStatus string

// Twilio sub-account statuses.
const (
	SubaccountActive    SubaccountStatus = "active"
	SubaccountSuspended SubaccountStatus = "suspended"
	SubaccountClosed    SubaccountStatus = "closed"
)

// Subaccount is a Twilio sub-account as the Twilio port returns it. AuthToken
// is the sub-account's own secret, used only to verify its webhooks.
type Subaccount struct {
	SID       string
	AuthToken string
	Status    SubaccountStatus
}

// Twilio is the port to Twilio's account API. Implementations return errors
// that wrap ErrUpstreamUnavailable (5xx, 429, timeout, no answer) or
// ErrTwilioSubaccountLimit (Twilio error 21480), so callers can tell them
// apart with errors.Is.
type Twilio interface {
	// CreateSubaccount creates a sub-account with the given FriendlyName.
	CreateSubaccount(ctx context.Context, friendlyName string) (Subaccount, error)
	// FindSubaccount returns the sub-account whose FriendlyName is exactly
	// friendlyName (the most recently created if several), or
	// ErrSubaccountNotFound.
	FindSubaccount(ctx context.Context, friendlyName string) (Subaccount, error)
	// SetSubaccountStatus moves a sub-account to active, suspended or closed.
	// Setting the status it already has succeeds; closed is final; a
	// sub-account Twilio does not know is ErrSubaccountNotFound.
	SetSubaccountStatus(ctx context.Context, sid string, status SubaccountStatus) error
}

// Keyring holds one key per customer, wrapped under the master key.
type Keyring interface {
	// Create makes the customer's key. Calling it again for a customer that
	// already has a key is a no-op, so a retried registration is safe.
	Create(ctx context.Context, customerID string) error
	// Cipher returns the customer's cipher, or an error matching
	// crypto.ErrKeyNotFound once the key is destroyed.
	Cipher(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Destroy deletes the customer's key for good and forgets every cached
	// copy. Destroying a key that is already gone is a no-op.
	Destroy(ctx context.Context, customerID string) error
	// KeyInfo names the customer's key and the master identity wrapping it,
	// or an error matching crypto.ErrKeyNotFound.
	KeyInfo(ctx context.Context, customerID string) (keyID, masterKeyID string, err error)
}
