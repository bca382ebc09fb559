// Package messages is a customer's SMS: the phone numbers bought into its
// Twilio sub-account, the outbox and the sender that hands messages to
// Twilio, delivery status, inbound messages and opt-outs.
//
// Invariants:
//   - every message lives in its customer's own database, its addresses,
//     body, media URLs and Twilio's error text sealed under the customer's
//     key; phone numbers are found through blind indexes only;
//   - a message's version 1 is the insert of its document (with an
//     Idempotency-Key its id is derived from the key, and for an inbound
//     message from its MessageSid, so the insert is the claim); every later
//     change is a claim of the next version (store.Versioned);
//   - outbound status only moves forward: accepted → sending → sent →
//     delivered, or to undelivered / failed, and a final status never
//     changes;
//   - a message is handed to Twilio only by the holder of its send attempt
//     (the claim of the version that starts it); an attempt whose answer
//     never came is reconciled against the sub-account's message list
//     before another attempt, so one message is never sent twice;
//   - every message a 202 acknowledged has a pointer in the control
//     database's outbox until the sender has settled it, so a restart drops
//     none;
//   - an opt-out is recorded per customer, keyed by the phone's blind index,
//     and checked (with the redaction) again right before each Twilio
//     create; a texted opt-out is lifted only by the person's own text;
//   - a redacted message keeps no body, and no blind index of it once no
//     attempt of it is left to reconcile.
package messages

import (
	"errors"
	"time"
)

// Directions.
const (
	Outbound = "outbound"
	Inbound  = "inbound"
)

// Statuses. Outbound messages move forward through accepted, sending, sent
// and one of the final delivered, undelivered and failed; inbound messages
// are received.
const (
	StatusAccepted    = "accepted"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
	StatusReceived    = "received"
)

// Statuses lists every status, for validating ?status=.
var Statuses = []string{StatusAccepted, StatusSending, StatusSent, StatusDelivered, StatusUndelivered, StatusFailed, StatusReceived}

// rank orders outbound statuses; final statuses share the top rank and
// never change.
func rank(s string) int {
	switch s {
	case StatusAccepted:
		return 0
	case StatusSending:
		return 1
	case StatusSent:
		return 2
	default:
		return 3
	}
}

func final(s string) bool { return rank(s) == 3 }

// fromTwilio maps a Twilio message status to Switchboard's ("" when it
// says nothing Switchboard tracks).
func fromTwilio(s string) string {
	switch s {
	case "accepted", "queued", "scheduled", "sending":
		return StatusSending
	case "sent":
		return StatusSent
	case "delivered", "read":
		return StatusDelivered
	case "undelivered":
		return StatusUndelivered
	case "failed", "canceled":
		return StatusFailed
	}
	return ""
}

// Message is a message as the tenant API shows it.
type Message struct {
	ID           string
	Direction    string
	From, To     string
	ContactID    *string
	Body         *string
	MediaURLs    []string
	Status       string
	ErrorCode    *int
	ErrorMessage *string
	TwilioSID    *string
	Segments     *int
	Keyword      *string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	SentAt       *time.Time
	DeliveredAt  *time.Time
	RedactedAt   *time.Time
}

// PhoneNumber is a number of a customer's sub-account.
type PhoneNumber struct {
	ID          string
	PhoneNumber string
	TwilioSID   string
	SMS, MMS    bool
	CreatedAt   time.Time
}

// OptOut is the opt-out state of one phone number for a customer.
type OptOut struct {
	Phone     string
	OptedOut  bool
	UpdatedAt *time.Time
	Source    *string
}

// Sentinels of the messaging domain; the api package maps each to a problem.
var (
	ErrNotFound          = errors.New("message not found")
	ErrNumberNotFound    = errors.New("phone number not found")
	ErrNoSenderNumber    = errors.New("the customer has no phone number to send from")
	ErrRecipientOptedOut = errors.New("the recipient opted out")
	ErrNumberUnavailable = errors.New("phone number unavailable")
	// ErrOptedOutBySMS: an opt-in recorded some other way than by SMS over
	// an opt-out the person texted (a STOP-like keyword, or Twilio's 21610
	// for one texted to Twilio): only the person lifts it, by texting.
	ErrOptedOutBySMS    = errors.New("the number opted out by SMS")
	ErrWebhookForbidden = errors.New("webhook signature or account not accepted")
)
