//go:build noembedded

package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
)

// run refuses: this binary was built without the embedded engine (it can
// still attach to one another process runs).
func run(context.Context, string, *os.File, *slog.Logger) (*Engine, error) {
	return nil, errors.New("embedded engine: this binary was built without it (-tags noembedded); set SWITCHBOARD_MONGODB_URI")
}

// scrub has no engine files to scrub in this build.
func (e *Engine) scrub(context.Context, string) error { return nil }
