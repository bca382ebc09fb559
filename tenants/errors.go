package tenants

import (
	"errors"
	"fmt"
)

// Sentinel errors of the tenants domain. The api package maps each to one
// problem document; callers test for them with errors.Is.
var (
	ErrNotFound              = errors.New("not found")
	ErrInvalidTransition     = errors.New("invalid transition")
	ErrSpaceTaken            = errors.New("space taken")
	ErrPartnerNameTaken      = errors.New("partner name taken")
	ErrDataShredded          = errors.New("data shredded")
	ErrUnauthorized          = errors.New("unauthorized")
	ErrUpstreamUnavailable   = errors.New("upstream unavailable")
	ErrTwilioSubaccountLimit = errors.New("twilio sub-account limit reached")
	// ErrSubaccountNotFound is the Twilio port's "no such sub-account" (a
	// Twilio 404, or no sub-account of a name). It is never a customer's
	// not-found: the service decides what it means (closing one that is
	// gone is done; anything else is ErrSubaccountMissing).
	ErrSubaccountNotFound = errors.New("twilio: no such sub-account")
	// ErrSubaccountMissing: Twilio no longer knows the customer's
	// sub-account, so it cannot be suspended or re-opened (HTTP 502).
	ErrSubaccountMissing = errors.New("the customer's Twilio sub-account is missing at Twilio")
	ErrLeaseHeld         = errors.New("lease held by another run")
	// ErrBusy: another change of the customer is calling Twilio right now.
	ErrBusy = errors.New("another change is in progress")
)

// TransitionError reports a lifecycle transition the state machine does not
// draw. It matches ErrInvalidTransition.
type TransitionError struct {
	From   Status
	Action string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a customer in status %s", e.Action, e.From)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }
