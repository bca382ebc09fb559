package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
)

// Secondary lookups and lists in an order other than the _id's are ranges
// over index entries: small documents whose _id is the composite key
// (say "messages/s/<status>/<time>/<message id>") and that name their
// document. A Versioned collection with an Index keeps them:
//
//   - The entries of a state are written before the claim of that state, so
//     whoever finds the claim finds its entries: a claim that a crash left
//     unapplied never hides from a list (the reader rolls the document
//     forward), and there is no window between a claim and its entries.
//   - Once a state is applied, the entries of the state it replaced that it
//     does not have are deleted (by the writer, or by whoever rolls the
//     claim forward). A crash before that leaves stale entries.
//   - A reader checks every hit against its document (rolled forward when
//     it is behind) and skips stale entries, reading on until its page is
//     full: what it returns is always the documents' latest state.
//
// A collection listed in _id order (contacts) has no entries to find a new
// document by; its creations are recorded in a small pending range instead
// (Pending), which the list reads, and rolls forward, first: O(pending).

// entryDoc is one index entry.
type entryDoc struct {
	ID  string `bson:"_id"` // the composite key
	Doc string `bson:"doc"` // the document's id
}

// addEntries writes the entries of states (those a duplicate shows are
// there already stay).
func (v *Versioned[T, E]) addEntries(ctx context.Context, ids []string, states []*T, except []*T) error {
	if v.Index == nil {
		return nil
	}
	var docs []any
	for i, st := range states {
		var old []string
		if except != nil && except[i] != nil {
			old = v.Index(except[i])
		}
		for _, k := range v.Index(st) {
			if !slices.Contains(old, k) {
				docs = append(docs, entryDoc{ID: k, Doc: ids[i]})
			}
		}
	}
	if len(docs) == 0 {
		return nil
	}
	err := v.Entries.InsertMany(ctx, docs)
	var bwe mongo.BulkWriteException
	if err != nil && errors.As(err, &bwe) && bwe.WriteConcernError == nil {
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(we) {
				return fmt.Errorf("write index entries: %w", we)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("write index entries: %w", err)
	}
	return nil
}

// superseded are the entries old has and next does not (next nil: all of
// old's).
func (v *Versioned[T, E]) superseded(old, next *T) []string {
	if v.Index == nil || old == nil {
		return nil
	}
	var keep []string
	if next != nil {
		keep = v.Index(next)
	}
	var gone []string
	for _, k := range v.Index(old) {
		if !slices.Contains(keep, k) {
			gone = append(gone, k)
		}
	}
	return gone
}

// dropEntries deletes the entries old has and next does not (next nil: all
// of old's).
func (v *Versioned[T, E]) dropEntries(ctx context.Context, old, next *T) error {
	gone := v.superseded(old, next)
	if len(gone) == 0 {
		return nil
	}
	if _, err := v.Entries.DeleteIDs(context.WithoutCancel(ctx), gone); err != nil {
		return fmt.Errorf("delete superseded index entries: %w", err)
	}
	return nil
}

// Scan returns the documents whose index entries lie in r, in the entries'
// order, at most r.Limit of them (0: all), each at its latest state and
// still holding the entry it was found by; keep, if set, drops more. keys[i]
// is the entry docs[i] was found by: the last one is the next page's After.
func (v *Versioned[T, E]) Scan(ctx context.Context, r Range, keep func(*T) bool) (docs []*T, keys []string, err error) {
	limit := r.Limit
	for limit == 0 || len(docs) < limit {
		chunk := r
		if limit > 0 {
			// A little more than is missing: stale and dropped hits are rare.
			chunk.Limit = limit - len(docs) + 4
		}
		entries, err := All[entryDoc](ctx, v.Entries, chunk)
		if err != nil {
			return nil, nil, fmt.Errorf("read index entries: %w", err)
		}
		states, err := v.hits(ctx, entries)
		if err != nil {
			return nil, nil, err
		}
		for i, st := range states {
			if st == nil || (keep != nil && !keep(st)) {
				continue
			}
			docs, keys = append(docs, st), append(keys, entries[i].ID)
			if limit > 0 && len(docs) == limit {
				break
			}
		}
		if chunk.Limit == 0 || len(entries) < chunk.Limit {
			break
		}
		r.After = entries[len(entries)-1].ID
	}
	return docs, keys, nil
}

// hits returns, for each entry, the document it names if its latest state
// holds the entry, else nil (a stale entry). The documents are read with
// one query; only a document behind its claims (or not yet applied) is
// read again, rolled forward.
func (v *Versioned[T, E]) hits(ctx context.Context, entries []entryDoc) ([]*T, error) {
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Doc)
	}
	raws, err := v.Docs.FindIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read indexed documents: %w", err)
	}
	byID := make(map[string]*T, len(raws))
	for _, raw := range raws {
		var st T
		if err := bson.Unmarshal(raw, &st); err != nil {
			return nil, err
		}
		byID[raw.Lookup("_id").StringValue()] = &st
	}
	states := make([]*T, len(entries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, e := range entries {
		if st := byID[e.Doc]; st != nil && slices.Contains(v.Index(st), e.ID) {
			states[i] = st
			continue
		}
		g.Go(func() error {
			st, err := v.hit(gctx, e)
			states[i] = st
			return err
		})
	}
	return states, g.Wait()
}

// hit returns the document an entry names if its latest state holds the
// entry, else nil (a stale entry).
func (v *Versioned[T, E]) hit(ctx context.Context, e entryDoc) (*T, error) {
	st, err := v.Get(ctx, e.Doc)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if slices.Contains(v.Index(st), e.ID) {
		return st, nil
	}
	// Behind a claim whose entries were written first?
	st, err = v.settle(ctx, e.Doc, st, false)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if slices.Contains(v.Index(st), e.ID) {
		return st, nil
	}
	return nil, nil
}

// pendingDoc records a creation between its claim and its document.
type pendingDoc struct {
	ID  string    `bson:"_id"` // <collection>/<document id>
	At  time.Time `bson:"at"`
	Doc string    `bson:"doc"`
}

func (v *Versioned[T, E]) pendingID(id string) string { return v.Docs.Name() + "/" + id }

// notePending records the creations of ids before their claims.
func (v *Versioned[T, E]) notePending(ctx context.Context, ids []string) error {
	if v.Pending == nil {
		return nil
	}
	at := v.now()
	docs := make([]any, len(ids))
	for i, id := range ids {
		docs[i] = pendingDoc{ID: v.pendingID(id), At: at, Doc: id}
	}
	if err := v.Pending.InsertMany(ctx, docs); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("note pending creations: %w", err)
	}
	return nil
}

// clearPending forgets creations whose documents exist.
func (v *Versioned[T, E]) clearPending(ctx context.Context, ids []string) error {
	if v.Pending == nil {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = v.pendingID(id)
	}
	if _, err := v.Pending.DeleteIDs(context.WithoutCancel(ctx), keys); err != nil {
		return fmt.Errorf("clear pending creations: %w", err)
	}
	return nil
}

// RollPending applies every creation a crash left between its claim and its
// document, so that an _id-ordered list that follows sees it. It reads the
// pending range only: nothing, usually.
func (v *Versioned[T, E]) RollPending(ctx context.Context) error {
	if v.Pending == nil {
		return nil
	}
	pend, err := All[pendingDoc](ctx, v.Pending, Prefix(v.Docs.Name()+"/"))
	if err != nil {
		return fmt.Errorf("read pending creations: %w", err)
	}
	var done []string
	for _, p := range pend {
		_, err := v.Get(ctx, p.Doc) // applies a first claim
		switch {
		case err == nil:
			done = append(done, p.Doc)
		case errors.Is(err, ErrNotFound) && v.now().Sub(p.At) > GateTTL:
			// Its creator died before claiming: nothing was created.
			done = append(done, p.Doc)
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	return v.clearPending(ctx, done)
}

// Insert creates a document whose insert is its own claim (no claim of
// version 1: its unique _id decides between racing creators), writing its
// index entries first. A taken _id is the duplicate-key error as it came.
func (v *Versioned[T, E]) Insert(ctx context.Context, id string, state *T) error {
	if err := v.addEntries(ctx, []string{id}, []*T{state}, nil); err != nil {
		return err
	}
	if err := v.hold(ctx, []Held[T]{{Coll: v.Docs.Name(), ClaimID: id, Docs: v.Docs.Name(), DocID: id, New: state}}); err != nil {
		return err
	}
	return v.Docs.InsertOne(ctx, state)
}

// Reindex writes the index entries of every document in the range (one
// stored before it had entries: a migrated one). Idempotent.
func (v *Versioned[T, E]) Reindex(ctx context.Context) (int, error) {
	if v.Index == nil {
		return 0, nil
	}
	cur, err := v.Docs.Find(ctx, Range{})
	if err != nil {
		return 0, err
	}
	defer cur.Close(ctx)
	n := 0
	var ids []string
	var states []*T
	flush := func() error {
		err := v.addEntries(ctx, ids, states, nil)
		ids, states = ids[:0], states[:0]
		return err
	}
	for cur.Next(ctx) {
		var st T
		if err := cur.Decode(&st); err != nil {
			return n, err
		}
		var doc struct {
			ID string `bson:"_id"`
		}
		if err := cur.Decode(&doc); err != nil {
			return n, err
		}
		ids, states = append(ids, doc.ID), append(states, &st)
		n++
		if len(ids) == 500 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// msFromYear1 shifts Unix milliseconds so that every time Go can hold from
// year 1 on is a non-negative 15-digit number.
const msFromYear1 = 62135596800000

// TimeKey is a time as a part of an _id: fixed width, so keys sort as the
// times (to the millisecond).
func TimeKey(t time.Time) string { return fmt.Sprintf("%015d", t.UnixMilli()+msFromYear1) }

// TimeOfKey is the time of a key that starts with a TimeKey.
func TimeOfKey(key string) (time.Time, bool) {
	if len(key) < 15 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(key[:15], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms - msFromYear1).UTC(), true
}
