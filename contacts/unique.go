package contacts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
)

// Unique values (email, phone, crmId, externalId) are held through lookup
// entries: a chain of generations per value (store.Chain), named by the
// value's kind and blind index, so the value itself is never stored. An
// entry names the contact that claimed the value and the version of the
// change that claimed it. The value belongs to the entry's contact while
// that contact holds it; so an entry is
//
//   - live: its contact holds the value (the value is taken);
//   - pending: its contact does not hold it yet, the claiming change has not
//     landed (the contact is older than that version, or does not exist
//     yet) and the entry is younger than pendingFor (the value is taken);
//   - free: anything else, the value was dropped, the claiming change lost
//     its race, or the claimer died; the next claimer takes the next
//     generation.
//
// Takers race by inserting the next generation, so exactly one takes a free
// value; a dropped value needs no write to become free, and a hard delete
// marks its entries released.
const pendingFor = time.Minute

type lookupDoc struct {
	ContactID string    `bson:"contactId"`
	Version   int64     `bson:"version"`
	At        time.Time `bson:"at"`
	Released  bool      `bson:"released,omitempty"`
}

type lookupGen = store.Gen[lookupDoc]

func lookupName(kind string, idx []byte) string {
	return kind + ":" + base64.RawURLEncoding.EncodeToString(idx)
}

func (h *Handle) lookupChain() store.Chain[lookupDoc] {
	return store.Chain[lookupDoc]{Coll: h.lookups()}
}

// entryState is what an entry means now.
type entryState int

const (
	entryFree entryState = iota
	entryPending
	entryLive
)

// judge tells what entry g of the value (kind, idx) means, and returns its
// contact when live.
func (h *Handle) judge(ctx context.Context, kind string, idx []byte, g *lookupGen) (entryState, *contactDoc, error) {
	if g.Body.Released {
		return entryFree, nil, nil
	}
	doc, err := h.contactDocs().Get(ctx, g.Body.ContactID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		doc = nil
	case err != nil:
		return 0, nil, fmt.Errorf("lookup %s: %w", kind, err)
	}
	if doc != nil && string(doc.Idx[kind]) == string(idx) {
		return entryLive, doc, nil
	}
	if doc != nil && doc.Version < g.Body.Version {
		// The document may lag behind the claim of the change that took
		// the value (a crash between claim and apply): the claims decide.
		if c, err := h.contactDocs().Claim(ctx, g.Body.ContactID, g.Body.Version); err == nil && string(c.State.Idx[kind]) == string(idx) {
			return entryLive, &c.State, nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, nil, fmt.Errorf("lookup %s: %w", kind, err)
		}
	}
	if (doc == nil || doc.Version < g.Body.Version) && h.nowMs().Sub(g.Body.At) < pendingFor {
		return entryPending, nil, nil
	}
	return entryFree, nil, nil
}

// findBy finds the contact holding a unique value, or ErrNotFound. It walks
// the value's generations; the usual case is one entry and its contact.
func (h *Handle) findBy(ctx context.Context, kind, value string) (*contactDoc, error) {
	held, err := h.holderOf(ctx, kind, h.index(kind, value))
	if err != nil {
		return nil, err
	}
	if held == nil || held.doc == nil {
		return nil, ErrNotFound
	}
	return held.doc, nil
}

// holder is the outcome of claiming a value: the contact that holds it
// (live) when the claim lost, or nothing when the claim is ours now.
type holder struct {
	pending bool        // another change is taking it right now
	doc     *contactDoc // the contact that holds it
}

// claim takes the value (kind, idx) for contactID at version, walking its
// generations from n (1 if unknown). It returns nil when the value is the
// contact's now, or the holder when another contact has it or is taking it.
func (h *Handle) claim(ctx context.Context, kind string, idx []byte, contactID string, version, from int64) (*holder, error) {
	name := lookupName(kind, idx)
	mine := false
	for n := max(from, 1); ; {
		g, err := h.lookupChain().Get(ctx, name, n)
		if errors.Is(err, store.ErrNotFound) {
			if mine {
				return nil, nil
			}
			_, err := h.lookupChain().Take(ctx, name, n, lookupDoc{ContactID: contactID, Version: version, At: h.nowMs()})
			if errors.Is(err, store.ErrExists) {
				continue // another taker won generation n: judge it
			}
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", kind, err)
		}
		// Ours only if this very change took it: an entry the contact left
		// behind with an earlier value is judged like anyone's (another
		// contact may have taken the value after it).
		if g.Body.ContactID == contactID && g.Body.Version == version && !g.Body.Released {
			mine = true
			n++
			continue
		}
		st, doc, err := h.judge(ctx, kind, idx, g)
		if err != nil {
			return nil, err
		}
		switch st {
		case entryLive:
			return &holder{doc: doc}, nil
		case entryPending:
			return &holder{pending: true}, nil
		}
		n++
	}
}

// claimFresh claims many values that are likely new with one unordered
// insert of their first generations; it returns, for each, whether that
// insert failed (the value has entries already: claim it one by one).
func (h *Handle) claimFresh(ctx context.Context, names []string, bodies []lookupDoc) ([]bool, error) {
	failed := make([]bool, len(names))
	if len(names) == 0 {
		return failed, nil
	}
	docs := make([]any, len(names))
	for i, name := range names {
		docs[i] = lookupGen{ID: store.GenID(name, 1), Name: name, N: 1, Body: bodies[i]}
	}
	err := h.lookups().InsertMany(ctx, docs)
	if err == nil {
		return failed, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return nil, fmt.Errorf("claim unique values: %w", err)
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return nil, fmt.Errorf("claim unique values: %w", we)
		}
		failed[we.Index] = true
	}
	return failed, nil
}

// release marks the contact's entries of the given values released (a hard
// delete, or a create that failed after claiming), so they are free at once.
// Only the contact's own writer writes its entries.
func (h *Handle) release(ctx context.Context, contactID string, idx map[string][]byte) error {
	for kind, v := range idx {
		name := lookupName(kind, v)
		for n := int64(1); ; n++ {
			g, err := h.lookupChain().Get(ctx, name, n)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return fmt.Errorf("release %s: %w", kind, err)
			}
			if g.Body.ContactID == contactID && !g.Body.Released {
				g.Body.Released = true
				if err := h.lookupChain().Put(ctx, g); err != nil {
					return fmt.Errorf("release %s: %w", kind, err)
				}
			}
		}
	}
	return nil
}
