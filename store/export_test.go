package store

import "log/slog"

// NewLevelFilterForTest exposes the engine's log filter to tests.
func NewLevelFilterForTest(min slog.Level, h slog.Handler) slog.Handler {
	return newLevelFilter(min, h)
}
