// Package storetest gives tests fresh databases on the real embedded engine.
// One engine runs per test binary, in a temporary data dir; every MustOpen
// gets randomly named databases that are dropped when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store"
)

var shared struct {
	once sync.Once
	db   *store.DB
	dir  string
	err  error
}

func engine() (*store.DB, error) {
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "sbtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.db, shared.err = store.Open(ctx, store.Config{
			DataDir: shared.dir,
			Names:   store.Names{Control: "sbtest_shared", Keys: "sbtest_shared_keys"},
			Logger:  Logger(),
		})
	})
	return shared.db, shared.err
}

// Logger discards what it is given; tests that want logs build their own.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// MustOpen returns a DB with fresh, randomly named control, keyring and
// customer databases on the shared engine, with indexes set up, and drops
// them all when tb ends.
func MustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	parent, err := engine()
	if err != nil {
		tb.Fatalf("start embedded engine: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	prefix := "t" + hex.EncodeToString(b)
	db := store.WithNames(parent, store.Names{
		Control: prefix + "_ctl",
		Keys:    prefix + "_keys",
		Data:    prefix + "_data",
		// A few cells, so tests spread customers as production does
		// without opening 64 files per test.
		Cells:        4,
		LegacyPrefix: prefix + "_sb_",
	})
	ctx := tb.Context()
	if err := db.EnsureIndexes(ctx); err != nil {
		tb.Fatalf("ensure indexes: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names, err := db.Client.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			tb.Errorf("list databases: %v", err)
			return
		}
		for _, n := range names {
			if strings.HasPrefix(n, prefix+"_") {
				if err := db.Client.Database(n).Drop(ctx); err != nil {
					tb.Errorf("drop %s: %v", n, err)
				}
			}
		}
	})
	return db
}

// Main runs the tests of a package and then stops the shared engine and
// removes its files. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.db != nil {
		if err := shared.db.Close(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "storetest: close engine:", err)
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
