package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

type roleKey struct{}

// TestLateSettleHidesAcknowledgedChange: a reader that settles (Latest)
// writes an older claimed state over a newer, acknowledged one, and its
// context is cancelled (the HTTP client went away) right after that write,
// before the re-check that should roll the document forward. Nothing else
// repairs the document: every Get-based reader (Service.Status for tokens,
// Service.Cipher, Customer, Customers, the Purge query) sees the old state
// until the next writer comes. This test FAILS on the current code.
func TestLateSettleHidesAcknowledgedChange(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	b, err := os.ReadFile(filepath.Join(db.DataDir(), "engine.addr"))
	if err != nil {
		t.Fatal(err)
	}
	uri := "mongodb://" + strings.ReplaceAll(strings.TrimSpace(string(b)), "/", "%2F") + "/"

	// The monitor pauses the "update" (ReplaceOne) of a role until released,
	// and cancels the reader's context once its replace has been answered.
	release := map[string]chan struct{}{"writer": make(chan struct{}), "reader": make(chan struct{})}
	paused := map[string]chan struct{}{"writer": make(chan struct{}, 1), "reader": make(chan struct{}, 1)}
	readerCtx, cancelReader := context.WithCancel(ctx)
	mon := &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			role, _ := ctx.Value(roleKey{}).(string)
			if e.CommandName == "update" && release[role] != nil {
				select {
				case paused[role] <- struct{}{}:
				default:
				}
				<-release[role]
			}
		},
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) {
			if role, _ := ctx.Value(roleKey{}).(string); role == "reader" && e.CommandName == "update" {
				cancelReader()
			}
		},
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	mk := func(c *mongo.Client) *store.Versioned[counter, note] {
		d := c.Database(db.Control.Name())
		return &store.Versioned[counter, note]{Docs: store.Plain(d.Collection("counters")), Claims: store.Plain(d.Collection("counter_claims")),
			Version: func(c *counter) int64 { return c.Version }}
	}
	plain, monitored := mk(db.Client), mk(client)
	if err := plain.Create(ctx, "k", &counter{ID: "k", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}

	// W claims version 2; its replace is slow (paused).
	wDone := make(chan error, 1)
	go func() {
		_, err := monitored.Update(context.WithValue(ctx, roleKey{}, "writer"), "k", 1, bump("w"), store.UpdateOptions[counter]{})
		wDone <- err
	}()
	<-paused["writer"]
	// R settles: it finds the claim of version 2 and replaces the document
	// with it; its replace is slow too (paused).
	rDone := make(chan error, 1)
	go func() {
		_, err := monitored.Latest(context.WithValue(readerCtx, roleKey{}, "reader"), "k")
		rDone <- err
	}()
	<-paused["reader"]
	// W finishes; D then changes the document to version 3 and is answered.
	close(release["writer"])
	if err := <-wDone; err != nil {
		t.Fatal(err)
	}
	got, err := plain.Update(ctx, "k", 2, bump("d"), store.UpdateOptions[counter]{})
	if err != nil || got.Version != 3 {
		t.Fatalf("D: %+v %v", got, err)
	}
	// R's late replace lands; its context ends before its re-check.
	close(release["reader"])
	rErr := <-rDone
	t.Logf("reader returned %v", rErr)

	cached, err := plain.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if cached.Version != 3 {
		t.Errorf("Get after an acknowledged change to version 3 answers version %d (applied %v): the document stays behind",
			cached.Version, cached.Applied)
	}
}
