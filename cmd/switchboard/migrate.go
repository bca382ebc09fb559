package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store"
)

// migrate moves data written by an older layout into this one. Each step is
// idempotent and resumable, and recorded once in the control database.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("migrate", &cfg, false, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	cfg.migrating = true
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close(context.Background())
	db := a.DB
	if db.ServedByAnother() {
		return errors.New("migrate: a server is running on this data dir; stop every `switchboard serve` first (migrate needs downtime)")
	}
	enc := json.NewEncoder(stdout)
	type summary struct {
		Layout    int   `json:"layout"`
		Moved     int   `json:"customersMoved"`
		Documents int64 `json:"documents"`
	}
	var sum summary
	v, err := db.LayoutVersion(ctx)
	if err != nil {
		return err
	}
	if v < store.LayoutShared {
		legacy, err := db.LegacyDatabases(ctx)
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(legacy))
		for id := range legacy {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		rekey := map[string]store.Rekey{"timeline": contacts.LegacyTimelineRow}
		reindex := func(ctx context.Context, t *store.Tenant) error {
			if _, err := contacts.Reindex(ctx, t); err != nil {
				return err
			}
			_, err := messages.Reindex(ctx, t)
			return err
		}
		for _, id := range ids {
			res, err := db.MoveLegacyCustomer(ctx, id, legacy[id], rekey, reindex)
			if err != nil {
				return err
			}
			enc.Encode(res)
			sum.Moved++
			sum.Documents += res.Documents
		}
		// Customers are listed per partner and found by the purge through
		// index entries the first layout did not write.
		if _, err := a.Tenants.ReindexCustomers(ctx); err != nil {
			return err
		}
		if err := db.FinishMigration(ctx); err != nil {
			return err
		}
	}
	// Later steps, each recorded once.
	for _, st := range []struct {
		name string
		run  func(context.Context) (int, error)
	}{
		// Sub-account routes are written at activation now; customers
		// activated before were routed at their first number purchase.
		{"subaccount-routes", a.Tenants.RepairSubaccountRoutes},
		// Each partner's keys are one range of partner_key_index.
		{"partner-key-index", a.Tenants.ReindexPartnerKeys},
		// The idempotency sweep reads the records due, by creation time.
		{"idempotency-due", idempotency.NewStore(db.Control.Collection("idempotency"), db.Control.Collection("idempotency_due")).Reindex},
	} {
		done, err := db.StepDone(ctx, st.name)
		if err != nil {
			return err
		}
		if done {
			continue
		}
		n, err := st.run(ctx)
		if err != nil {
			return fmt.Errorf("migrate step %s: %w", st.name, err)
		}
		enc.Encode(map[string]any{"step": st.name, "changed": n})
		if err := db.RecordStep(ctx, st.name); err != nil {
			return err
		}
	}
	if sum.Layout, err = db.LayoutVersion(ctx); err != nil {
		return err
	}
	return enc.Encode(map[string]summary{"summary": sum})
}
