package messages

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Twilio is the port to Twilio's phone-number and message resources of one
// sub-account. Every call is made with the platform's master credentials
// and the sub-account's SID in the path (accountSID).
//
// Errors: a refusal (a 4xx answer other than 404 and 429) is a
// *TwilioError carrying Twilio's code: nothing was done. 429 wraps
// ErrTwilioRateLimited (nothing was done; retry later). 404 wraps
// ErrTwilioNotFound. Everything else (5xx, no answer in time, a connection
// that failed, an answer that is not Twilio's) wraps
// tenants.ErrUpstreamUnavailable and is indeterminate for a write: it may
// have happened.
type Twilio interface {
	// SearchNumber returns the first available local number with SMS in
	// country (ISO 3166 alpha-2), in areaCode if not empty. None available
	// is a *TwilioError with code CodeNoNumbersInArea.
	SearchNumber(ctx context.Context, accountSID, country, areaCode string) (string, error)
	// BuyNumber buys phoneNumber (E.164) into the sub-account with smsURL as
	// its inbound webhook (POST).
	BuyNumber(ctx context.Context, accountSID, phoneNumber, smsURL string) (Number, error)
	// FindNumber returns the sub-account's number phoneNumber, or an error
	// wrapping ErrTwilioNotFound.
	FindNumber(ctx context.Context, accountSID, phoneNumber string) (Number, error)
	// ReleaseNumber releases a number; one already gone is released.
	ReleaseNumber(ctx context.Context, accountSID, numberSID string) error
	// CreateMessage sends a message.
	CreateMessage(ctx context.Context, accountSID string, s Send) (TwilioMessage, error)
	// FetchMessage reads one message.
	FetchMessage(ctx context.Context, accountSID, sid string) (TwilioMessage, error)
	// ListMessages pages through the sub-account's messages to To from
	// From (each when not empty), newest first as Twilio lists them,
	// within f's DateSent bounds when set (Twilio's DateSent> and
	// DateSent<: whole UTC days, both inclusive; a message not sent yet
	// has no date_sent and is then left out). It calls each with every
	// message in turn, and reads no further page once each returns false.
	ListMessages(ctx context.Context, accountSID string, f ListFilter, each func(TwilioMessage) bool) error
	// RedactMessage erases a message's body at Twilio (an update with an
	// empty Body).
	RedactMessage(ctx context.Context, accountSID, sid string) error
	// DeleteMessage deletes a message at Twilio; one already gone is
	// deleted.
	DeleteMessage(ctx context.Context, accountSID, sid string) error
	// ValidSignature reports whether signature is the X-Twilio-Signature
	// Twilio sends with a callback to url carrying params, signed with
	// authToken (the sub-account's own). It reads nothing and never fails:
	// it is the one check of every Twilio callback.
	ValidSignature(authToken, url string, params map[string]string, signature string) bool
}

// Number is a phone number as Twilio holds it.
type Number struct {
	SID         string // PN…
	PhoneNumber string // E.164
	SMS, MMS    bool
}

// Send is one message to create at Twilio.
type Send struct {
	From, To, Body string
	MediaURLs      []string
	// StatusCallback is where Twilio posts the message's status changes.
	StatusCallback string
}

// TwilioMessage is a message as Twilio answers it.
type TwilioMessage struct {
	SID, AccountSID     string
	From, To, Body      string
	Status              string // Twilio's: queued, sending, sent, delivered, undelivered, failed, …
	ErrorCode           int    // 0: none
	ErrorMessage        string
	Segments            int
	DateCreated         time.Time
	DateSent            time.Time // zero until sent
	Direction           string
	MessagingServiceSID string
}

// ListFilter selects messages for ListMessages: the days (UTC) of
// SentAfter and SentBefore bound the day each was sent, when not zero.
type ListFilter struct {
	To, From              string
	SentAfter, SentBefore time.Time
}

// Twilio error codes Switchboard acts on.
const (
	CodeInvalidTo          = 21211 // "To" is not a valid phone number
	CodeNumberInvalid      = 21421 // PhoneNumber is invalid
	CodeNumberUnavailable  = 21422 // PhoneNumber is not available
	CodeNoNumbersInArea    = 21452 // no phone numbers found in that area
	CodeOptedOut           = 21610 // the recipient replied STOP
	CodeNoInternational    = 21408 // permission to send to that region is not enabled
	CodeNotMobile          = 21614 // "To" is not a mobile number
	CodeCannotRoute        = 21612 // cannot route to this number
	CodeFromNotYours       = 21606 // "From" is not a number of the account
	CodeMessageNotFinished = 20009 // cannot delete a message not yet final
)

// ErrTwilioRateLimited is Twilio's 429: nothing was done; retry later.
var ErrTwilioRateLimited = errors.New("twilio: too many requests")

// ErrTwilioNotFound is Twilio's 404: no such resource.
var ErrTwilioNotFound = errors.New("twilio: no such resource")

// TwilioError is a refusal by Twilio: nothing was done.
type TwilioError struct {
	Status  int // HTTP status
	Code    int // Twilio error code
	Message string
}

// Error names the status and code only: Twilio's text can carry a phone
// number, and errors reach logs.
func (e *TwilioError) Error() string {
	return fmt.Sprintf("twilio refused (status %d, error %d)", e.Status, e.Code)
}

// TwilioCode returns the Twilio error code of a refusal, or 0.
func TwilioCode(err error) int {
	var te *TwilioError
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
