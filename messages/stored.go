package messages

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
)

// messageDoc is a message as stored: the outbox row of an outbound
// message. Everything that describes a person is in Sealed.
type messageDoc struct {
	ID        string   `bson:"_id"`
	Version   int64    `bson:"version"`
	Direction string   `bson:"direction"`
	Status    string   `bson:"status"`
	Sealed    []byte   `bson:"sealed"`
	PartyIdx  [][]byte `bson:"partyIdx"` // blind indexes of from and to
	ContactID *string  `bson:"contactId"`
	ErrorCode *int     `bson:"errorCode,omitempty"`
	TwilioSID *string  `bson:"twilioSid,omitempty"`
	Segments  *int     `bson:"segments,omitempty"`
	Keyword   *string  `bson:"keyword,omitempty"`
	// BodyIdx is the blind index of an outbound body: reconciliation finds
	// the message at Twilio by it, even once the body is redacted here.
	BodyIdx []byte `bson:"bodyIdx,omitempty"`
	// Fingerprint is the keyed fingerprint of the request that created the
	// message under an Idempotency-Key.
	Fingerprint []byte `bson:"fingerprint,omitempty"`
	// Attempt counts send attempts; AttemptAt is the start of the one in
	// flight (nil when none is): an attempt that never ended is reconciled
	// before the next.
	Attempt   int        `bson:"attempt"`
	AttemptAt *time.Time `bson:"attemptAt,omitempty"`
	// RetryAt: no attempt before then (Twilio answered 429).
	RetryAt *time.Time `bson:"retryAt,omitempty"`
	// TwilioRedacted: Twilio's copy is erased too (or there is none).
	TwilioRedacted bool       `bson:"twilioRedacted,omitempty"`
	CreatedAt      time.Time  `bson:"createdAt"`
	UpdatedAt      time.Time  `bson:"updatedAt"`
	SentAt         *time.Time `bson:"sentAt,omitempty"`
	DeliveredAt    *time.Time `bson:"deliveredAt,omitempty"`
	RedactedAt     *time.Time `bson:"redactedAt,omitempty"`
}

// payload is a message's sealed part.
type payload struct {
	From         string   `json:"from"`
	To           string   `json:"to"`
	Body         *string  `json:"body,omitempty"`
	MediaURLs    []string `json:"mediaUrls,omitempty"`
	ErrorMessage *string  `json:"errorMessage,omitempty"`
}

func payloadField(id string) crypto.Field {
	return crypto.Field{Collection: "messages", DocumentID: id, Name: "payload"}
}

func (h *Handle) seal(d *messageDoc, p *payload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	d.Sealed, err = h.cipher.Seal(payloadField(d.ID), b)
	return err
}

func (h *Handle) open(d *messageDoc) (*payload, error) {
	p, err := crypto.OpenJSON[payload](h.cipher, payloadField(d.ID), d.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open message: %w", err)
	}
	return p, nil
}

// bodyIdx is the blind index of a message body.
func (h *Handle) bodyIdx(body string) []byte { return h.cipher.BlindIndex("message body", body) }

// phoneIdx is the blind index of a normalised phone number.
func (h *Handle) phoneIdx(e164 string) []byte { return h.cipher.BlindIndex("phone", e164) }

func (h *Handle) view(d *messageDoc) (Message, error) {
	p, err := h.open(d)
	if err != nil {
		return Message{}, err
	}
	m := Message{
		ID: d.ID, Direction: d.Direction, From: p.From, To: p.To, ContactID: d.ContactID,
		Body: p.Body, MediaURLs: p.MediaURLs, Status: d.Status, ErrorCode: d.ErrorCode,
		ErrorMessage: p.ErrorMessage, TwilioSID: d.TwilioSID, Segments: d.Segments, Keyword: d.Keyword,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		SentAt: switchboard.UTC(d.SentAt), DeliveredAt: switchboard.UTC(d.DeliveredAt), RedactedAt: switchboard.UTC(d.RedactedAt),
	}
	if m.MediaURLs == nil {
		m.MediaURLs = []string{}
	}
	return m, nil
}

// numberDoc is a number of the customer's sub-account, in its database.
type numberDoc struct {
	ID        string    `bson:"_id"`
	Sealed    []byte    `bson:"sealed"` // the number
	TwilioSID string    `bson:"twilioSid"`
	SMS       bool      `bson:"sms"`
	MMS       bool      `bson:"mms"`
	CreatedAt time.Time `bson:"createdAt"`
	// number is the opened number, never stored.
	number string `bson:"-"`
}

func numberField(id string) crypto.Field {
	return crypto.Field{Collection: "phone_numbers", DocumentID: id, Name: "phoneNumber"}
}

func purchaseField(id string) crypto.Field {
	return crypto.Field{Collection: "number_purchases", DocumentID: id, Name: "phoneNumber"}
}

// optOutDoc is the opt-out state of one phone number: its _id is the
// number's blind index (hex), so the number itself is not stored.
type optOutDoc struct {
	ID        string    `bson:"_id"`
	Version   int64     `bson:"version"`
	OptedOut  bool      `bson:"optedOut"`
	Source    []byte    `bson:"source"` // sealed
	UpdatedAt time.Time `bson:"updatedAt"`
	// Order is the contacts.OrderKey of the event that set it: an older
	// event arriving late (a retried webhook) does not undo it.
	Order string `bson:"order"`
}

func optOutField(id string) crypto.Field {
	return crypto.Field{Collection: "opt_outs", DocumentID: id, Name: "source"}
}

func timelineItemID(s *Service, messageID string) string { return s.derivedID("timeline", messageID) }
