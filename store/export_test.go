package store

import (
	"errors"
	"log/slog"
)

// NewLevelFilterForTest exposes the engine's log filter to tests.
func NewLevelFilterForTest(min slog.Level, h slog.Handler) slog.Handler {
	return newLevelFilter(min, h)
}

// CrashAfterClaim makes every change of v stop right after its claim (as
// a killed process would) while on is true.
func CrashAfterClaim[T, E any](v *Versioned[T, E], on func() bool) {
	v.crash = func() error {
		if on() {
			return errKilled
		}
		return nil
	}
}

var errKilled = errors.New("killed after the claim")
