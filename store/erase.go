package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// RedactHistory rewrites the state kept in the claims of versions 1 to
// before-1 of id with redacted(n) (which must keep version n): for erasure,
// when a document's earlier states must stop holding what its latest one no
// longer does. The claims themselves stay (the version ledger needs them).
// Each is rewritten by exact _id; a claim already gone is skipped.
func (v *Versioned[T, E]) RedactHistory(ctx context.Context, id string, before int64, redacted func(n int64) *T) error {
	for n := int64(1); n < before; n++ {
		c, err := v.Claim(ctx, id, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		c.State = *redacted(n)
		if _, err := v.Claims.ReplaceID(ctx, c.ID, c); err != nil {
			return fmt.Errorf("redact %s: %w", c.ID, err)
		}
	}
	return nil
}

// Delete removes the document for good. It claims the next version as a
// deletion (racing writers lose that version; a later reader or writer
// finds it and is told ErrNotFound), deletes the document, and rewrites
// every earlier claim with redacted(n) (keeping version n): the versions
// stay, so no stale writer can claim one again, and what they held goes.
// A Delete stopped half-way is finished by the next one (or its deletion
// applied by the next reader). ErrNotFound for a document that never was.
func (v *Versioned[T, E]) Delete(ctx context.Context, id string, redacted func(n int64) *T) error {
	for attempt := 0; ; attempt++ {
		cur, err := v.Latest(ctx, id)
		if errors.Is(err, ErrNotFound) {
			// Gone already, perhaps by a Delete that stopped before its
			// redaction: finish that.
			last, err := v.lastClaim(ctx, id)
			if err != nil {
				return err
			}
			if !last.Deleted {
				return ErrNotFound
			}
			return v.RedactHistory(ctx, id, last.Version, redacted)
		}
		if err != nil {
			return err
		}
		n := v.Version(cur) + 1
		c := Claim[T, E]{ID: ClaimID(id, n), DocID: id, Version: n, At: v.now(), State: *redacted(n), Writer: writerID(), Deleted: true}
		if err := v.hold(ctx, []Held[T]{{Coll: v.Claims.Name(), ClaimID: c.ID, Writer: c.Writer, Old: cur}}); err != nil {
			return err
		}
		if err := v.Claims.InsertOne(ctx, c); mongo.IsDuplicateKeyError(err) {
			if attempt >= maxAttempts {
				return fmt.Errorf("delete %s: lost %d times in a row: %w", id, attempt+1, ErrBusy)
			}
			continue // another change won that version: delete after it
		} else if err != nil {
			return fmt.Errorf("claim the deletion of %s: %w", id, err)
		}
		ctx = context.WithoutCancel(ctx) // the deletion stands: finish it
		if _, err := v.Docs.DeleteID(ctx, id); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		if err := v.dropEntries(ctx, cur, nil); err != nil {
			return err
		}
		return v.RedactHistory(ctx, id, n, redacted)
	}
}
