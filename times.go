package switchboard

import "time"

// TimeFormat is how times are written on the wire (API.md): RFC 3339 in
// UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime writes t as TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// UTC is t in UTC, nil for nil.
func UTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Deref is the value p points to, the zero value for nil.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
