package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// This file is the one way Switchboard changes state. It is built only on
// what is atomic and served by the primary key on every engine we run on:
// inserting a document with a unique _id (a claim: the loser gets a
// duplicate-key error) and reading, replacing or deleting by exact _id. A
// filtered update is never trusted as a compare-and-set: the embedded engine
// (FerretDB 1.24) runs it as a read, a check in Go and a write by _id, so two
// writers can both "match" (FerretDB issue #3040), and it scans.

// Errors of the claim primitive.
var (
	// ErrNotFound: no document with that _id.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a document (or claim) with that _id exists already.
	ErrExists = errors.New("store: already exists")
	// ErrConflict: the expected version is not the current one. The error
	// is a *ConflictError carrying the current version.
	ErrConflict = errors.New("store: version conflict")
	// ErrBusy: a change of the document is in progress (its side effects
	// are running); try again shortly.
	ErrBusy = errors.New("store: change in progress")
)

// ConflictError is a stale expected version; it matches ErrConflict.
type ConflictError struct{ Current int64 }

func (e *ConflictError) Error() string {
	return "version conflict: current version is " + strconv.FormatInt(e.Current, 10)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// AnyVersion as an expected version means "whatever it is now": the change
// is applied to the latest state, retried if another change wins meanwhile,
// and never answered with a conflict.
const AnyVersion int64 = 0

// ClaimID is the _id of the claim of version v of the document id.
func ClaimID(id string, v int64) string { return id + ":" + strconv.FormatInt(v, 10) }

// Claim is the claim of one version of a versioned document: the whole state
// the document moves to, and what the change wants to keep with it (an audit
// event, say). Claims are never changed once inserted, but for erasure
// (RedactHistory), which keeps their versions and rewrites what they hold.
type Claim[T, E any] struct {
	ID      string    `bson:"_id"` // ClaimID(DocID, Version)
	DocID   string    `bson:"docId"`
	Version int64     `bson:"version"`
	At      time.Time `bson:"at"`
	State   T         `bson:"state"`
	Event   E         `bson:"event"`
	// Writer is a random id of the change that inserted the claim: after an
	// insert whose answer was lost, it tells whether the claim is ours.
	Writer string `bson:"writer,omitempty"`
	// Deleted marks the claim of a deletion: the document is gone from this
	// version on (see Delete).
	Deleted bool `bson:"deleted,omitempty"`
}

// Versioned is a collection of versioned documents that change only through
// claims. The document with _id X at version n is a cache of the claim with
// _id "X:n" in the claims collection.
//
// Invariants:
//
//   - Version n+1 of a document exists once its claim "X:n+1" is inserted:
//     the insert decides the winner among racing writers (the losers get a
//     duplicate key), so exactly one change wins each version, and a change
//     with a stale expected version loses.
//   - A winner then replaces the document by exact _id with the claimed
//     state and checks for a newer claim, rolling the document forward to
//     the latest one it finds. A claim left unapplied by a crash is applied
//     by the next writer (its claim of the same version fails, so it reads
//     and applies the existing one first), and by a reader that settles.
//   - A late replace can put an older state over a newer one only between
//     its write and its own check that follows, which rolls the document
//     forward again; the claims are the truth, the document a cache that
//     never stays behind an acknowledged change.
//   - Versions start at 1 and grow by exactly one per change; a claim is
//     never deleted while its document lives (a stale writer could otherwise
//     claim that version again).
//   - In a collection with side effects outside the database (Twilio),
//     every change first takes a gate for the version it is about to claim, so that of several racing
//     changes only one performs its side effect; the gate is given back when
//     the change fails, so a retry is not blocked.
type Versioned[T, E any] struct {
	// Docs holds the documents, Claims their claims (one per version).
	Docs, Claims *Coll
	// Gates, if set, holds side-effect gates: every Update of the collection
	// then runs its change only after taking the gate of the version it will
	// claim, so of racing changes only one performs its side effects (calls
	// to Twilio). Nil when no change has side effects.
	Gates *Coll
	// Version reads the version of a state.
	Version func(*T) int64
	// Index, if set, names the index entries of a state (composite keys in
	// Entries, each ending with the document's id): they are written before
	// the state's claim and checked by Scan (see index.go).
	Index   func(*T) []string
	Entries *Coll
	// Pending, if set, records creations until their documents exist, for
	// lists in _id order (RollPending).
	Pending *Coll
	// Hold, if set, runs once changes are decided and before their claims
	// are inserted, with each claim's id and writer: what it writes (the
	// deliveries of the events the changes cause) exists before the
	// changes do, and is judged by the claim it names (ClaimWriter) before
	// it takes effect. So no change is without what Hold wrote, and what
	// it wrote for a change that did not win is never acted on.
	Hold func(ctx context.Context, held []Held[T]) error

	// crash, set by tests, stops a change right after its claim, as a
	// killed process would.
	crash func() error
	// Now is the clock of claims and gates; nil means time.Now.
	Now func() time.Time
}

// Held is one change as Hold sees it: the claim it is about to insert (in
// collection Coll: the claims, or the documents for Insert, whose
// document is its own claim and has no writer) and the states it moves
// between (Old is nil for a creation, New for a deletion).
//
// Docs and DocID name the document: a claim that wins may still be taken
// back when the document cannot be written (Create's insert refused by
// another unique index, ClaimMany on a document that is gone), so what
// Hold wrote for a creation or a change is judged by the document too.
type Held[T any] struct {
	Coll, ClaimID, Writer string
	Docs, DocID           string
	Old, New              *T
}

// hold runs v.Hold, if set.
func (v *Versioned[T, E]) hold(ctx context.Context, held []Held[T]) error {
	if v.Hold == nil || len(held) == 0 {
		return nil
	}
	return v.Hold(ctx, held)
}

// ClaimWriter is the writer of the claim claimID in claims: whose change
// won that version. ErrNotFound when no claim has that id (yet).
func ClaimWriter(ctx context.Context, claims *Coll, claimID string) (string, error) {
	var c struct {
		Writer string `bson:"writer"`
	}
	err := claims.FindID(ctx, claimID).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	return c.Writer, err
}

// GateTTL is how long a gate holds other changes off. A change whose
// process died before it claimed its version is then assumed dead; its side
// effects must be safe to repeat.
const GateTTL = time.Minute

// maxAttempts bounds the retries of an AnyVersion change that keeps losing
// to other writers.
const maxAttempts = 200

// busyWait bounds how long a change waits for another one's side effects
// (a Twilio call answers or counts as failed within 15 s).
const busyWait = 20 * time.Second

func (v *Versioned[T, E]) crashed() error {
	if v.crash == nil {
		return nil
	}
	return v.crash()
}

func (v *Versioned[T, E]) now() time.Time {
	if v.Now != nil {
		return v.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

// Get returns the document's current state as cached, without settling: a
// change that is being applied right now may not show yet. A document whose
// first claim was inserted but never applied (a crash) is created from it.
func (v *Versioned[T, E]) Get(ctx context.Context, id string) (*T, error) {
	var doc T
	err := v.Docs.FindID(ctx, id).Decode(&doc)
	if err == nil {
		return &doc, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	c, err := v.lastClaim(ctx, id)
	if err != nil {
		return nil, err // ErrNotFound: no such document
	}
	if c.Deleted {
		return nil, ErrNotFound
	}
	if err := v.Docs.InsertOne(ctx, c.State); err != nil && !mongo.IsDuplicateKeyError(err) {
		return nil, fmt.Errorf("roll forward %s: %w", id, err)
	}
	// Another writer may have moved it on meanwhile (or a unique index kept
	// it out: then it does not exist).
	if err := v.Docs.FindID(ctx, id).Decode(&doc); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("read %s: %w", id, err)
	}
	return &doc, nil
}

// lastClaim walks a document's claims from the first to the newest (a
// read a claim; only for a document that has none applied), or ErrNotFound.
func (v *Versioned[T, E]) lastClaim(ctx context.Context, id string) (*Claim[T, E], error) {
	var last *Claim[T, E]
	for n := int64(1); ; n++ {
		c, err := v.Claim(ctx, id, n)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		last = c
	}
	if last == nil {
		return nil, ErrNotFound
	}
	return last, nil
}

// Claim reads the claim of one version, or ErrNotFound.
func (v *Versioned[T, E]) Claim(ctx context.Context, id string, version int64) (*Claim[T, E], error) {
	var c Claim[T, E]
	err := v.Claims.FindID(ctx, ClaimID(id, version)).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read claim %s: %w", ClaimID(id, version), err)
	}
	return &c, nil
}

// Latest returns the document's state at its latest claim, rolling the
// cached document forward if a claim is ahead of it.
func (v *Versioned[T, E]) Latest(ctx context.Context, id string) (*T, error) {
	cur, err := v.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return v.settle(ctx, id, cur, false)
}

// Settle rolls a state the caller read from the documents forward to the
// document's latest claim (one read when none is ahead).
func (v *Versioned[T, E]) Settle(ctx context.Context, id string, cur *T) (*T, error) {
	return v.settle(ctx, id, cur, false)
}

// settle rolls cur forward to the latest claim. wrote says the caller just
// replaced the document with cur, so the document needs no write unless a
// newer claim exists.
func (v *Versioned[T, E]) settle(ctx context.Context, id string, cur *T, wrote bool) (*T, error) {
	// A settle that has started finishes even if its caller goes away: a
	// replace of ours that landed late must be followed by its check.
	ctx = context.WithoutCancel(ctx)
	latest := cur
	for {
		c, err := v.Claim(ctx, id, v.Version(latest)+1)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if c.Deleted {
			// Deleted from this version on: the document goes too.
			if _, err := v.Docs.DeleteID(ctx, id); err != nil {
				return nil, fmt.Errorf("apply deletion of %s: %w", id, err)
			}
			if err := v.dropEntries(ctx, cur, nil); err != nil {
				return nil, err
			}
			return nil, ErrNotFound
		}
		latest = &c.State
	}
	if latest == cur {
		return cur, nil
	}
	if err := v.replace(ctx, id, latest); err != nil {
		return nil, err
	}
	if err := v.dropEntries(ctx, cur, latest); err != nil {
		return nil, err
	}
	// Our replace may itself have been late: check once more.
	return v.settle(ctx, id, latest, true)
}

func (v *Versioned[T, E]) replace(ctx context.Context, id string, state *T) error {
	matched, err := v.Docs.ReplaceID(ctx, id, state)
	if err != nil {
		return fmt.Errorf("apply %s: %w", id, err)
	}
	if !matched {
		// Deleted meanwhile (a hard delete): nothing to apply to.
		return ErrNotFound
	}
	return nil
}

// Create makes version 1 of the document id: it claims "id:1" with state
// and ev, then inserts the document. ErrExists if the id is taken. A
// duplicate key on another unique index of Docs (say, a name taken) is
// returned as it came, with the claim given back, so nothing of it stays.
func (v *Versioned[T, E]) Create(ctx context.Context, id string, state *T, ev E) error {
	c := Claim[T, E]{ID: ClaimID(id, 1), DocID: id, Version: 1, At: v.now(), State: *state, Event: ev, Writer: writerID()}
	if err := v.addEntries(ctx, []string{id}, []*T{state}, nil); err != nil {
		return err
	}
	if err := v.hold(ctx, []Held[T]{{Coll: v.Claims.Name(), ClaimID: c.ID, Writer: c.Writer, Docs: v.Docs.Name(), DocID: id, New: state}}); err != nil {
		return err
	}
	if err := v.notePending(ctx, []string{id}); err != nil {
		return err
	}
	if err := v.Claims.InsertOne(ctx, c); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return ErrExists
		}
		return fmt.Errorf("claim %s: %w", c.ID, err)
	}
	if err := v.crashed(); err != nil {
		return err
	}
	if err := v.Docs.InsertOne(ctx, state); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			// A reader may have applied our claim already (Get rolls a
			// first claim forward): then the document is ours and here.
			if _, gerr := v.Docs.FindID(ctx, id).Raw(); gerr == nil {
				return nil
			}
			// Else another unique index refused it (a name taken). The claim
			// is ours alone and nothing applied it, so deleting it by _id
			// is safe: nothing of the refused create stays.
			if _, derr := v.Claims.DeleteID(context.WithoutCancel(ctx), c.ID); derr != nil {
				return errors.Join(err, derr)
			}
			return err
		}
		// A crash or error here leaves the claim: the next Get applies it.
		return fmt.Errorf("create %s: %w", id, err)
	}
	return v.clearPending(ctx, []string{id})
}

// CreateMany makes version 1 of many new documents with two writes: one
// insert of all their claims, then one of all the documents. ids must be
// new (fresh UUIDs): any duplicate fails the call, and a crash in between
// leaves claims that the next Get of each id applies.
func (v *Versioned[T, E]) CreateMany(ctx context.Context, ids []string, states []*T, evs []E) error {
	if len(ids) == 0 {
		return nil
	}
	at, writer := v.now(), writerID()
	claims := make([]any, len(ids))
	docs := make([]any, len(ids))
	held := make([]Held[T], len(ids))
	for i, id := range ids {
		claims[i] = Claim[T, E]{ID: ClaimID(id, 1), DocID: id, Version: 1, At: at, State: *states[i], Event: evs[i], Writer: writer}
		docs[i] = states[i]
		held[i] = Held[T]{Coll: v.Claims.Name(), ClaimID: ClaimID(id, 1), Writer: writer, Docs: v.Docs.Name(), DocID: id, New: states[i]}
	}
	if err := v.addEntries(ctx, ids, states, nil); err != nil {
		return err
	}
	if err := v.hold(ctx, held); err != nil {
		return err
	}
	if err := v.notePending(ctx, ids); err != nil {
		return err
	}
	if err := v.Claims.InsertMany(ctx, claims); err != nil {
		return fmt.Errorf("claim %d new documents: %w", len(ids), err)
	}
	if err := v.crashed(); err != nil {
		return err
	}
	err := v.Docs.InsertMany(ctx, docs)
	var bwe mongo.BulkWriteException
	if err == nil {
		return v.clearPending(ctx, ids)
	}
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return fmt.Errorf("create %d documents: %w", len(ids), err)
	}
	// A duplicate is a document a reader already applied from its claim
	// (Get rolls first claims forward); anything else is a failure.
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return fmt.Errorf("create %s: %w", ids[we.Index], we)
		}
		if _, gerr := v.Docs.FindID(ctx, ids[we.Index]).Raw(); gerr != nil {
			return fmt.Errorf("create %s: %w", ids[we.Index], we)
		}
	}
	return v.clearPending(ctx, ids)
}

// Change computes the next state of a document from its current one. It
// returns nil to change nothing (a no-op), or the next state, whose version
// must be the current one plus one, and the event to keep in its claim.
type Change[T, E any] func(cur *T) (next *T, ev E, err error)

// UpdateOptions tune one Update.
type UpdateOptions[T any] struct {
	// Visible, if set, runs on the state read before anything else: an
	// error (another tenant's document: not found) refuses the change.
	Visible func(cur *T) error
	// Check, if set, runs after the version check and before any gate: an
	// error refuses the change (a transition not allowed from cur); noop
	// answers with the current state without taking a gate.
	Check func(cur *T) (noop bool, err error)
}

// Update applies change to the document's state at version expected
// (AnyVersion: at whatever version it has, retrying when another writer
// wins). It returns the state it stored, or the current state when change
// returns nil. A stale expected version is a *ConflictError naming the
// current one. In a gated collection a change waits for another change of
// the same version that is running its side effects, and is judged by that
// one's outcome (ErrBusy if it takes longer than busyWait).
func (v *Versioned[T, E]) Update(ctx context.Context, id string, expected int64, change Change[T, E], opts UpdateOptions[T]) (*T, error) {
	cur, err := v.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	busyUntil := time.Now().Add(busyWait)
	for attempt := 0; ; attempt++ {
		if opts.Visible != nil {
			if err := opts.Visible(cur); err != nil {
				return nil, err
			}
		}
		if expected != AnyVersion && v.Version(cur) != expected {
			// The cache may lag behind a claim (a crash, or a change being
			// applied): judge by the claims.
			if cur, err = v.settle(ctx, id, cur, false); err != nil {
				return nil, err
			}
			if v.Version(cur) != expected {
				return nil, &ConflictError{Current: v.Version(cur)}
			}
			continue // check the settled state again
		}
		if opts.Check != nil {
			noop, err := opts.Check(cur)
			if err != nil {
				return nil, err
			}
			if noop {
				return cur, nil
			}
		}
		nextVersion := v.Version(cur) + 1
		gate := ""
		if v.Gates != nil {
			gate, err = v.takeGate(ctx, id, nextVersion)
			switch {
			case errors.Is(err, ErrBusy):
				// Another change of this version is running its side
				// effects: wait for its outcome (it claims the version, or
				// fails and gives the gate back), then judge again.
				if time.Now().After(busyUntil) {
					return nil, ErrBusy
				}
				if err := sleep(ctx, backoff(attempt)); err != nil {
					return nil, err
				}
				fallthrough
			case errors.Is(err, ErrConflict):
				if cur, err = v.settle(ctx, id, cur, false); err != nil {
					return nil, err
				}
				continue
			case err != nil:
				return nil, err
			}
		}
		next, ev, err := change(cur)
		if err != nil || next == nil {
			v.releaseGate(ctx, gate)
			return cur, err
		}
		if v.Version(next) != nextVersion {
			v.releaseGate(ctx, gate)
			return nil, fmt.Errorf("update %s: next version %d after %d", id, v.Version(next), v.Version(cur))
		}
		c := Claim[T, E]{ID: ClaimID(id, nextVersion), DocID: id, Version: nextVersion, At: v.now(), State: *next, Event: ev, Writer: writerID()}
		if err := v.addEntries(ctx, []string{id}, []*T{next}, []*T{cur}); err != nil {
			v.releaseGate(ctx, gate)
			return nil, err
		}
		if err := v.hold(ctx, []Held[T]{{Coll: v.Claims.Name(), ClaimID: c.ID, Writer: c.Writer, Docs: v.Docs.Name(), DocID: id, Old: cur, New: next}}); err != nil {
			v.releaseGate(ctx, gate)
			return nil, err
		}
		err = v.Claims.InsertOne(ctx, c)
		if err != nil && !mongo.IsDuplicateKeyError(err) {
			// The answer may be lost while the insert stood (a timeout):
			// whether we won is in the claim.
			if got, gerr := v.Claim(context.WithoutCancel(ctx), id, nextVersion); gerr == nil && got.Writer == c.Writer {
				err = nil
			}
		}
		if err == nil {
			// Won. The gate stays: a writer still holding the old version
			// must not run its side effects now. The apply and its check
			// finish even if the caller goes away meanwhile.
			actx := context.WithoutCancel(ctx)
			if err := v.crashed(); err != nil {
				return nil, err
			}
			if err := v.replace(actx, id, next); err != nil {
				// The claim stands; the next reader or writer applies it.
				return nil, err
			}
			if err := v.dropEntries(actx, cur, next); err != nil {
				return nil, err
			}
			return v.settleAfterWrite(actx, id, next)
		}
		v.releaseGate(ctx, gate)
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("claim %s: %w", c.ID, err)
		}
		// Lost the version to another writer: catch up with the claims.
		if cur, err = v.settle(ctx, id, cur, false); err != nil {
			return nil, err
		}
		if expected != AnyVersion {
			return nil, &ConflictError{Current: v.Version(cur)}
		}
		if attempt >= maxAttempts {
			return nil, fmt.Errorf("update %s: lost %d times in a row: %w", id, attempt+1, ErrBusy)
		}
	}
}

// settleAfterWrite rolls forward past a newer claim that a late replace of
// ours may have hidden, and returns next (what this change stored).
func (v *Versioned[T, E]) settleAfterWrite(ctx context.Context, id string, next *T) (*T, error) {
	if _, err := v.settle(ctx, id, next, true); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return next, nil
}

func writerID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 4)
	return min(d, 10*time.Millisecond)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
