package tenants

import (
	"errors"
	"fmt"
)

// Sentinel errors of the tenants domain. The api package maps each to one
// problem document; callers test for them with errors.Is.
var (
	ErrNotFound              = errors.New("not found")
	ErrVersionConflict       = errors.New("version conflict")
	ErrInvalidTransition     = errors.New("invalid transition")
	ErrSpaceTaken            = errors.New("space taken")
	ErrCustomerNotActive     = errors.New("customer not active")
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

// VersionConflictError reports a stale expectedVersion together with the
// version the resource has now. It matches ErrVersionConflict.
type VersionConflictError struct {
	Current int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("version conflict: current version is %d", e.Current)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

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

// FieldError names one invalid field of a request, by its JSON path
// ("retention.period", "data[3].email") or query parameter name.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError is a well-typed request that breaks a rule (HTTP 422).
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "validation failed"
	}
	return fmt.Sprintf("validation failed: %s: %s", e.Fields[0].Field, e.Fields[0].Message)
}

// Add records one invalid field.
func (e *ValidationError) Add(field, message string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: message})
}

// Err returns e when it holds any field, else nil.
func (e *ValidationError) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}
