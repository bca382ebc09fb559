package contacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"

	"github.com/switchboard/switchboard"
)

// This file is the one write pipeline of contacts. A change of an existing
// contact (an upsert item that matched, a patch, an anonymization) is
// change: its new unique values are claimed, then its version (see
// store.Versioned). New contacts of a batch are created together: their
// unique values claimed with one insert, their documents and first claims
// with two more, their timeline with one.

// mutation computes a contact's next person from the current one (nil for
// a new contact) and the timeline items of the change.
type mutation func(old *contactDoc, oldP *personal) (next *personal, country *string, anonymized bool, items []timelineDoc, err error)

// change applies m to contact id at version expected (AnyVersion: the
// latest, merging again if another change wins meanwhile). A unique value
// held by another contact fails it with errConflict, before anything is
// written.
func (h *Handle) change(ctx context.Context, id string, expected int64, m mutation) (*contactDoc, *personal, error) {
	var p *personal
	doc, err := h.contactDocs().Update(ctx, id, expected, func(cur *contactDoc) (*contactDoc, struct{}, error) {
		// The items of the change before are copied before this one's
		// replace them in the document.
		if err := h.flush(ctx, cur.Pending); err != nil {
			return nil, struct{}{}, err
		}
		oldP, err := h.open(cur)
		if err != nil {
			return nil, struct{}{}, err
		}
		next, country, anonymized, items, err := m(cur, oldP)
		if err != nil {
			return nil, struct{}{}, err
		}
		doc, err := h.build(id, cur, next, country, anonymized, items)
		if err != nil {
			return nil, struct{}{}, err
		}
		claimed := map[string][]byte{}
		for _, k := range lookupKinds {
			idx, ok := doc.Idx[k]
			if !ok || string(cur.Idx[k]) == string(idx) {
				continue
			}
			held, err := h.claim(ctx, k, idx, id, doc.Version, 1)
			if err != nil {
				return nil, struct{}{}, err
			}
			if held != nil {
				// Refused: what this change took for its other values is
				// given back at once, not left pending for a minute.
				if err := h.release(ctx, id, claimed); err != nil {
					return nil, struct{}{}, err
				}
				return nil, struct{}{}, errConflict
			}
			claimed[k] = idx
		}
		p = next
		return doc, struct{}{}, nil
	}, store.UpdateOptions[contactDoc]{})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		return nil, nil, &switchboard.VersionConflictError{Current: ce.Current}
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, ErrNotFound
	case err != nil:
		return nil, nil, err
	}
	if err := h.flush(ctx, doc.Pending); err != nil {
		return nil, nil, err
	}
	return doc, p, nil
}

// merging is the mutation of an upsert item or a patch: in merged onto the
// stored person, with an updated item and one per consent changed.
func (h *Handle) merging(in Input) mutation {
	return func(old *contactDoc, oldP *personal) (*personal, *string, bool, []timelineDoc, error) {
		now := h.nowMs()
		p, changed, consents := merge(oldP, in, now)
		items, err := h.items(old.ID, ItemUpdated, changed, consents, now)
		return p, countryOf(old, in), old.Anonymized, items, err
	}
}

// planned is one new contact of a batch on its way to the database.
type planned struct {
	index   int
	doc     *contactDoc
	claimed map[string][]byte // unique values claimed for it so far
}

// waitPending bounds how long a batch waits, in all, for values other
// requests are creating right now, to update those contacts rather than
// fail.
const waitPending = 5 * time.Second

// applyBatch writes a validated batch. Match keys are claimed for new
// contacts with one insert (a value that has entries already is settled one
// by one: held means update, or duplicate with Add); new contacts' other
// unique values with another; their documents with two more
// (store.Versioned.CreateMany) and their timeline with one. Matched items
// are changes of their contacts. Of two items that want the same unique
// value, the first gets it.
func (h *Handle) applyBatch(ctx context.Context, mode, matchBy string, items []Input, now time.Time) ([]Result, error) {
	results := make([]Result, len(items))
	matchIdx := make([][]byte, len(items))
	newIDs := make([]string, len(items))
	isNew := make([]bool, len(items))
	existing := make([]string, len(items)) // contact to update
	for i, in := range items {
		results[i].Index = i
		matchIdx[i] = h.index(matchBy, matchField(&in, matchBy).Value)
		newIDs[i] = uuid.Must(uuid.NewV7()).String()
	}

	// 1. Match keys: claim the first generation for every item that may
	// create; the values that have entries already are settled one by one.
	// Waiting for values other requests are creating is bounded for the
	// whole batch, far inside pendingFor: a batch never outlives its own
	// claims.
	waitUntil := time.Now().Add(waitPending)
	settle := make([]bool, len(items))
	if mode == ModeUpdate {
		for i := range items {
			settle[i] = true
		}
	} else {
		names := make([]string, len(items))
		bodies := make([]lookupDoc, len(items))
		for i := range items {
			names[i] = lookupName(matchBy, matchIdx[i])
			bodies[i] = lookupDoc{ContactID: newIDs[i], Version: 1, At: now}
		}
		failed, err := h.claimFresh(ctx, names, bodies)
		if err != nil {
			return nil, err
		}
		for i := range items {
			isNew[i] = !failed[i]
			settle[i] = failed[i]
		}
	}
	for i := range items {
		if !settle[i] {
			continue
		}
		if err := h.resolveMatch(ctx, mode, matchBy, matchIdx[i], newIDs[i], &results[i], &isNew[i], &existing[i], waitUntil); err != nil {
			return nil, err
		}
	}

	// 2. New contacts: build them, claim their other unique values.
	var plan []*planned
	taken := map[string]int{} // lookup name → the item that claims it in this batch
	for i, in := range items {
		if !isNew[i] {
			continue
		}
		person, _, consents := merge(nil, in, now)
		tl, err := h.items(newIDs[i], ItemCreated, nil, consents, now)
		if err != nil {
			return nil, err
		}
		doc, err := h.build(newIDs[i], nil, person, countryOf(nil, in), false, tl)
		if err != nil {
			return nil, err
		}
		p := &planned{index: i, doc: doc, claimed: map[string][]byte{matchBy: matchIdx[i]}}
		conflict := false
		for _, k := range lookupKinds {
			if idx, ok := doc.Idx[k]; ok && k != matchBy {
				if j, dup := taken[lookupName(k, idx)]; dup && j != i {
					conflict = true
				}
			}
		}
		if conflict {
			if err := h.fail(ctx, p, &results[i]); err != nil {
				return nil, err
			}
			continue
		}
		for _, k := range lookupKinds {
			if idx, ok := doc.Idx[k]; ok {
				taken[lookupName(k, idx)] = i
			}
		}
		plan = append(plan, p)
	}
	plan, err := h.claimOthers(ctx, matchBy, plan, results)
	if err != nil {
		return nil, err
	}

	// 3. Create them: claims, documents, timeline.
	ids := make([]string, len(plan))
	docs := make([]*contactDoc, len(plan))
	evs := make([]struct{}, len(plan))
	var timeline []timelineDoc
	var written []string
	for k, p := range plan {
		ids[k], docs[k] = p.doc.ID, p.doc
		results[p.index].ID, results[p.index].Outcome = p.doc.ID, "created"
		for _, it := range p.doc.Pending {
			timeline = append(timeline, it)
			written = append(written, it.ID)
		}
	}
	if err := h.contactDocs().CreateMany(ctx, ids, docs, evs); err != nil {
		return nil, err
	}
	if len(timeline) > 0 {
		// The items also sit in each contact's pending list: a crash before
		// this line loses none of them.
		if err := h.putItems(ctx, timeline); err != nil {
			return nil, fmt.Errorf("record timeline: %w", err)
		}
		for _, id := range written {
			h.flushed.Add(id, struct{}{})
		}
	}

	// 4. Matched items change their contacts, in order.
	for i, in := range items {
		if existing[i] == "" {
			continue
		}
		_, _, err := h.change(ctx, existing[i], store.AnyVersion, h.merging(in))
		results[i].ID = existing[i]
		switch {
		case errors.Is(err, errConflict):
			results[i].Outcome, results[i].Code = "failed", CodeConflict
		case errors.Is(err, ErrNotFound):
			results[i].Outcome, results[i].Code = "failed", CodeNotFound
		case err != nil:
			return nil, err
		default:
			results[i].Outcome = "updated"
		}
	}
	return results, nil
}

// resolveMatch settles an item whose match key has entries already: the
// contact holding it is updated (or, with Add, the item is a duplicate); a
// free key is claimed for a new contact (not with Update: not found). A key
// another request is creating right now is waited for.
func (h *Handle) resolveMatch(ctx context.Context, mode, matchBy string, idx []byte, newID string, res *Result, isNew *bool, existing *string, deadline time.Time) error {
	for {
		var held *holder
		var err error
		if mode == ModeUpdate {
			held, err = h.holderOf(ctx, matchBy, idx)
		} else {
			held, err = h.claim(ctx, matchBy, idx, newID, 1, 1)
		}
		if err != nil {
			return err
		}
		switch {
		case held == nil && mode == ModeUpdate:
			res.Outcome, res.Code = "failed", CodeNotFound
			return nil
		case held == nil:
			*isNew = true
			return nil
		case held.doc != nil && mode == ModeAdd:
			res.ID, res.Outcome, res.Code = held.doc.ID, "failed", CodeDuplicate
			return nil
		case held.doc != nil:
			*existing = held.doc.ID
			return nil
		case mode == ModeAdd:
			res.Outcome, res.Code = "failed", CodeDuplicate
			return nil
		}
		// Pending: another request is creating this contact right now.
		if time.Now().After(deadline) {
			res.Outcome, res.Code = "failed", CodeConflict
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// holderOf tells who holds a value, without claiming it: nil when nobody.
func (h *Handle) holderOf(ctx context.Context, kind string, idx []byte) (*holder, error) {
	name := lookupName(kind, idx)
	pending := false
	for n := int64(1); ; n++ {
		g, err := h.lookupChain().Get(ctx, name, n)
		if errors.Is(err, store.ErrNotFound) {
			if pending {
				return &holder{pending: true}, nil
			}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", kind, err)
		}
		st, doc, err := h.judge(ctx, kind, idx, g)
		if err != nil {
			return nil, err
		}
		switch st {
		case entryLive:
			return &holder{doc: doc}, nil
		case entryPending:
			pending = true
		}
	}
}

// claimOthers claims the new contacts' unique values other than the match
// key: all first generations with one insert, the rest one by one. A new
// contact whose value another contact holds fails with conflict and gives
// back what it claimed. It returns the contacts that may be created.
func (h *Handle) claimOthers(ctx context.Context, matchBy string, plan []*planned, results []Result) ([]*planned, error) {
	type ref struct {
		p    *planned
		kind string
	}
	var names []string
	var bodies []lookupDoc
	var refs []ref
	for _, p := range plan {
		for _, k := range lookupKinds {
			if idx, ok := p.doc.Idx[k]; ok && k != matchBy {
				names = append(names, lookupName(k, idx))
				bodies = append(bodies, lookupDoc{ContactID: p.doc.ID, Version: 1, At: p.doc.CreatedAt})
				refs = append(refs, ref{p, k})
			}
		}
	}
	failed, err := h.claimFresh(ctx, names, bodies)
	if err != nil {
		return nil, err
	}
	lost := map[*planned]bool{}
	for i, r := range refs {
		if !failed[i] {
			r.p.claimed[r.kind] = r.p.doc.Idx[r.kind]
			continue
		}
		if lost[r.p] {
			continue
		}
		held, err := h.claim(ctx, r.kind, r.p.doc.Idx[r.kind], r.p.doc.ID, 1, 1)
		if err != nil {
			return nil, err
		}
		if held != nil {
			lost[r.p] = true
			continue
		}
		r.p.claimed[r.kind] = r.p.doc.Idx[r.kind]
	}
	kept := plan[:0]
	for _, p := range plan {
		if !lost[p] {
			kept = append(kept, p)
			continue
		}
		if err := h.fail(ctx, p, &results[p.index]); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// fail reports a new contact as failed with conflict and releases the
// values claimed for it, so they are free at once.
func (h *Handle) fail(ctx context.Context, p *planned, res *Result) error {
	res.ID, res.Outcome, res.Code = "", "failed", CodeConflict
	return h.release(ctx, p.doc.ID, p.claimed)
}

func allDuplicates(bwe mongo.BulkWriteException) bool {
	if bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return false
		}
	}
	return true
}

// Upsert adds or updates a batch. The whole batch is validated first
// (nothing is written if any item is invalid); then each item is applied on
// its own and reported.
func (h *Handle) Upsert(ctx context.Context, mode, matchBy string, data []Input) ([]Result, error) {
	now := h.nowMs()
	var verr switchboard.ValidationError
	if mode != ModeAdd && mode != ModeUpdate && mode != ModeAddOrUpdate {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "mode", Message: "must be Add, Update or AddOrUpdate"})
	}
	if !slices.Contains(lookupKinds, matchBy) {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "matchBy", Message: "must be email, phone, crmId or externalId"})
	}
	if len(data) < 1 || len(data) > 1000 {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "data", Message: "must hold 1 to 1000 contacts"})
	}
	if len(verr.Fields) > 0 {
		return nil, &verr
	}
	norm := make([]Input, len(data))
	seen := map[string]int{}
	for i, in := range data {
		prefix := "data[" + fmt.Sprint(i) + "]."
		n, errs := normalize(in, prefix, now)
		verr.Fields = append(verr.Fields, errs...)
		norm[i] = n
		if len(errs) > 0 {
			continue
		}
		key := matchField(&n, matchBy)
		if !key.Set || key.Null {
			verr.Fields = append(verr.Fields, switchboard.FieldError{Field: prefix + matchBy, Message: "is required: it is the match key"})
			continue
		}
		if j, dup := seen[key.Value]; dup {
			verr.Fields = append(verr.Fields, switchboard.FieldError{Field: prefix + matchBy, Message: fmt.Sprintf("repeats the match key of data[%d]", j)})
			continue
		}
		seen[key.Value] = i
	}
	if len(verr.Fields) > 0 {
		return nil, &verr
	}
	return h.applyBatch(ctx, mode, matchBy, norm, now)
}

func matchField(in *Input, kind string) Field[string] {
	switch kind {
	case KeyEmail:
		return in.Email
	case KeyPhone:
		return in.Phone
	case KeyCrmID:
		return in.CrmID
	}
	return in.ExternalID
}

// Patch applies a JSON merge patch to a contact.
func (h *Handle) Patch(ctx context.Context, id string, expected int64, in Input) (Contact, error) {
	in, errs := normalize(in, "", h.nowMs())
	if len(errs) > 0 {
		return Contact{}, &switchboard.ValidationError{Fields: errs}
	}
	doc, p, err := h.change(ctx, id, expected, h.merging(in))
	if errors.Is(err, errConflict) {
		return Contact{}, ErrUniqueConflict
	}
	if err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}
