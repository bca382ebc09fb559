package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
)

// ClaimMany is Update for many documents at once, each from a version the
// caller read: nexts[i] is the next state of document ids[i] (its version
// one above the one read). All claims go in one insert (a claim lost to
// another writer is a duplicate, as in Update), the won ones are applied
// with one bulk write of replaces, and each applied document is then
// checked for a newer claim, as every apply is. won[i] tells whether
// document i's claim won; a document whose claim lost (or that does not
// exist) is unchanged by this call and the caller judges it again.
//
// A crash anywhere leaves claims that the next reader or writer applies,
// as with Update.
//
// olds[i], if olds is set, is the state nexts[i] was computed from: its
// index entries that nexts[i] does not have are deleted once it is applied.
func (v *Versioned[T, E]) ClaimMany(ctx context.Context, ids []string, olds, nexts []*T, evs []E) (won []bool, err error) {
	won = make([]bool, len(ids))
	if len(ids) == 0 {
		return won, nil
	}
	at := v.now()
	writer := writerID()
	claims := make([]any, len(ids))
	for i, id := range ids {
		won[i] = true
		n := v.Version(nexts[i])
		claims[i] = Claim[T, E]{ID: ClaimID(id, n), DocID: id, Version: n, At: at, State: *nexts[i], Event: evs[i], Writer: writer}
	}
	if err := v.addEntries(ctx, ids, nexts, olds); err != nil {
		return won, err
	}
	held := make([]Held[T], len(ids))
	for i, id := range ids {
		held[i] = Held[T]{Coll: v.Claims.Name(), ClaimID: ClaimID(id, v.Version(nexts[i])), Writer: writer, Docs: v.Docs.Name(), DocID: id, New: nexts[i]}
		if olds != nil {
			held[i].Old = olds[i]
		}
	}
	if err := v.hold(ctx, held); err != nil {
		return won, err
	}
	err = v.Claims.InsertMany(ctx, claims)
	var bwe mongo.BulkWriteException
	switch {
	case err == nil:
	case errors.As(err, &bwe) && bwe.WriteConcernError == nil:
		for _, we := range bwe.WriteErrors {
			won[we.Index] = false
			if mongo.IsDuplicateKeyError(we) {
				continue
			}
			// The answer may be lost while the insert stood: whether we
			// won is in the claim.
			c, cerr := v.Claim(context.WithoutCancel(ctx), ids[we.Index], v.Version(nexts[we.Index]))
			if cerr == nil && c.Writer == writer {
				won[we.Index] = true
			}
		}
	default:
		// Unknown outcome for all: judge each by its claim.
		for i, id := range ids {
			c, cerr := v.Claim(context.WithoutCancel(ctx), id, v.Version(nexts[i]))
			won[i] = cerr == nil && c.Writer == writer
		}
	}
	if err := v.crashed(); err != nil {
		return won, err
	}
	// Apply and check the won ones; this finishes even if the caller goes
	// away (a claim that stands is applied now or by the next reader).
	actx := context.WithoutCancel(ctx)
	var applyIDs []string
	var applyDocs []any
	for i, id := range ids {
		if won[i] {
			applyIDs, applyDocs = append(applyIDs, id), append(applyDocs, nexts[i])
		}
	}
	if len(applyIDs) > 0 {
		matched, err := v.Docs.ReplaceMany(actx, applyIDs, applyDocs)
		if err != nil {
			// The claims stand: the next reader or writer applies them.
			return won, fmt.Errorf("apply %d claims: %w", len(applyIDs), err)
		}
		if matched < int64(len(applyIDs)) {
			// A document that does not exist cannot change: its claim is
			// taken back (nothing reads a claim above a missing first one)
			// and it did not win.
			for i, id := range ids {
				if !won[i] {
					continue
				}
				if _, gerr := v.Docs.FindID(actx, id).Raw(); errors.Is(gerr, mongo.ErrNoDocuments) {
					won[i] = false
					if _, derr := v.Claims.DeleteID(actx, ClaimID(id, v.Version(nexts[i]))); derr != nil {
						return won, fmt.Errorf("take back the claim on missing %s: %w", id, derr)
					}
				}
			}
		}
	}
	if olds != nil {
		// The superseded index entries of every applied document, at once.
		var gone []string
		for i := range ids {
			if won[i] && olds[i] != nil {
				gone = append(gone, v.superseded(olds[i], nexts[i])...)
			}
		}
		if _, err := v.Entries.DeleteIDs(actx, gone); err != nil {
			return won, fmt.Errorf("delete superseded index entries: %w", err)
		}
	}
	g, gctx := errgroup.WithContext(actx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			if !won[i] {
				// Lost to a claim that may not be applied yet (a crash):
				// roll the document forward, as a lost Update does, so the
				// caller's next look sees it.
				_, err := v.Latest(gctx, id)
				if errors.Is(err, ErrNotFound) {
					err = nil
				}
				return err
			}
			_, err := v.settleAfterWrite(gctx, id, nexts[i])
			return err
		})
	}
	return won, g.Wait()
}
