// Package contacts keeps a customer's contacts (its own end customers) and
// their timelines, sealed under the customer's key.
//
// Invariants:
//   - every operation runs on a Handle bound to one customer's database and
//     cipher: another customer's ids are simply not found there;
//   - every field that describes a person is stored only sealed; exact
//     lookups go through blind indexes (HMAC of the normalised value), and a
//     lookup entry is claimed before a contact takes a value, so email,
//     phone, crmId and externalId are unique within the customer;
//   - every change of a contact is one conditional update on {_id, version}
//     and records its timeline items in the contact document first, so a
//     crash cannot lose them.
package contacts

import (
	"errors"
	"time"
)

// Sentinels of the contacts domain.
var (
	ErrNotFound = errors.New("contact not found")
)

// Gender values.
const (
	GenderMale         = "Male"
	GenderFemale       = "Female"
	GenderNotSpecified = "NotSpecified"
)

// Contact is a contact as the tenant API shows it.
type Contact struct {
	ID               string
	Version          int64
	ExternalID       *string
	CrmID            *string
	Email            *string
	Phone            *string
	FirstName        *string
	LastName         *string
	DateOfBirth      *string
	Gender           *string
	Country          *string
	Channels         []Channel
	CustomAttributes []Attribute
	Consents         []Consent
	Anonymized       bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Channel is one way to reach a contact.
type Channel struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Attribute is a custom attribute.
type Attribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Consent records what a contact agreed to on one topic.
type Consent struct {
	Topic     string    `json:"topic"`
	Value     string    `json:"value"`
	UpdatedAt time.Time `json:"updatedAt"`
	Source    string    `json:"source"`
}

// TimelineItem is one thing that happened to a contact.
type TimelineItem struct {
	ID          string
	Type        string
	At          time.Time
	EventType   *string
	Message     *string
	SourceURL   *string
	InitiatedBy *string
	// MessageID names the message of a message.inbound or message.outbound
	// item.
	MessageID *string
	Data      map[string]any
}

// Timeline item types.
const (
	ItemCreated       = "contact.created"
	ItemUpdated       = "contact.updated"
	ItemAnonymized    = "contact.anonymized"
	ItemConsent       = "consent.changed"
	ItemExternalEvent = "event.external"
	ItemInbound       = "message.inbound"
	ItemOutbound      = "message.outbound"
)

// Field is a member of a contact input: absent, null (clear it) or a value.
type Field[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// Input is a contact as a request gives it: an upsert item or a merge patch.
type Input struct {
	ExternalID, CrmID, Email, Phone, FirstName, LastName, DateOfBirth, Gender, Country Field[string]
	Channels                                                                           Field[[]Channel]
	CustomAttributes                                                                   Field[[]Attribute]
	Consents                                                                           Field[[]ConsentInput]
}

// ConsentInput is a consent as a request gives it; the time is the server's.
type ConsentInput struct {
	Topic  string `json:"topic"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Upsert modes and match keys.
const (
	ModeAdd         = "Add"
	ModeUpdate      = "Update"
	ModeAddOrUpdate = "AddOrUpdate"
)

// Result of one upsert item.
type Result struct {
	Index   int
	ID      string
	Outcome string // created | updated | failed
	Code    string // duplicate | not_found | conflict, when failed
}

// ExternalEvent is the body of POST /v1/contacts/{id}/events.
type ExternalEvent struct {
	Type        string
	Message     string
	SourceURL   *string
	InitiatedBy *string
	OccurredAt  *time.Time
}
