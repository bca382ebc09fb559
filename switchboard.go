// Package switchboard is the vocabulary every part of Switchboard shares:
// the errors a request can end in (a rule broken, a stale version, a
// customer that is not ACTIVE), list cursors, and the normalisation of
// phone numbers and countries. Domain packages (tenants, contacts, tokens)
// return these; the api package maps each to one problem document.
package switchboard

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors shared by the domains.
var (
	// ErrVersionConflict: an expectedVersion that is not the current one.
	// Returned as a *VersionConflictError.
	ErrVersionConflict = errors.New("version conflict")
	// ErrCustomerNotActive: the customer is not ACTIVE (minting a token
	// for it, or using one).
	ErrCustomerNotActive = errors.New("customer not active")
	// ErrIdempotencyKeyReused: an Idempotency-Key sent again with another
	// request.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with another request")
)

// VersionConflictError reports a stale expectedVersion with the version the
// resource has now. It matches ErrVersionConflict.
type VersionConflictError struct {
	Current int64
}

func (e *VersionConflictError) Error() string {
	return "version conflict: current version is " + strconv.FormatInt(e.Current, 10)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

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

// Invalid returns a ValidationError naming one field.
func Invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: message}}}
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "validation failed"
	}
	var b strings.Builder
	b.WriteString("validation failed: ")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + ": " + f.Message)
	}
	return b.String()
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
