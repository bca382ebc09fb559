package store_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func TestUniqueIndexAndConditionalUpdate(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	c := db.Control.Collection("customers")
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "space", Value: "acme"}, {Key: "version", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "space", Value: "acme"}, {Key: "version", Value: 1}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second insert with the same space: got %v, want a duplicate key error", err)
	}
	res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "version", Value: 2}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 3}}}})
	if err != nil || res.MatchedCount != 0 {
		t.Fatalf("stale conditional update: matched %d, err %v; want 0, nil", res.MatchedCount, err)
	}
	res, err = c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "version", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: 2}}}})
	if err != nil || res.ModifiedCount != 1 {
		t.Fatalf("conditional update: modified %d, err %v; want 1, nil", res.ModifiedCount, err)
	}
	// Index set-up is idempotent.
	if err := db.EnsureIndexes(ctx); err != nil {
		t.Fatalf("second EnsureIndexes: %v", err)
	}
}

// TestEngineLockAndAttach: a second opener of the same data dir attaches to
// the first one's engine instead of starting another; after a clean stop,
// the next opener runs its own and finds the data.
func TestEngineLockAndAttach(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Embedded() {
		t.Fatal("not embedded")
	}
	if _, err := first.Control.Collection("partners").InsertOne(ctx, bson.D{{Key: "_id", Value: "p1"}, {Key: "keyPrefix", Value: "k1"}}); err != nil {
		t.Fatal(err)
	}
	second, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	n, err := second.Control.Collection("partners").CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("attached client sees %d partners (err %v), want 1", n, err)
	}
	if err := second.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The attached client closing must not stop the engine.
	if err := first.Ping(ctx); err != nil {
		t.Fatalf("engine stopped when an attached client closed: %v", err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mongo.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after clean stop: %v", err)
	}
	third, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close(ctx)
	n, err = third.Control.Collection("partners").CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("after restart %d partners (err %v), want 1", n, err)
	}
}

func TestLongDataDirUsesShortSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatalf("open with a %d-byte data dir: %v", len(dir), err)
	}
	defer db.Close(ctx)
	b, err := os.ReadFile(filepath.Join(dir, "engine.addr"))
	if err != nil {
		t.Fatal(err)
	}
	if sock := strings.TrimSpace(string(b)); len(sock) > 100 || strings.HasPrefix(sock, dir) {
		t.Fatalf("socket %q should be short and outside the data dir", sock)
	}
}

// TestLevelFilter: records below the level are dropped without the
// attributes of their logger ever being formatted; records at or above it
// carry every attribute and group.
func TestLevelFilter(t *testing.T) {
	var buf strings.Builder
	h := store.NewLevelFilterForTest(slog.LevelError, slog.NewTextHandler(&buf, nil))
	formatted := 0
	l := slog.New(h).With("stmt", logValuer(func() slog.Value { formatted++; return slog.StringValue("SELECT") }))
	l.Debug("query")
	if buf.Len() != 0 || formatted != 0 {
		t.Fatalf("a debug record was formatted: %q (%d)", buf.String(), formatted)
	}
	l.WithGroup("g").Error("failed", "k", "v")
	if got := buf.String(); !strings.Contains(got, "stmt=SELECT") || !strings.Contains(got, "g.k=v") {
		t.Fatalf("error record: %q", got)
	}
}

type logValuer func() slog.Value

func (f logValuer) LogValue() slog.Value { return f() }
