package contacts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// planned is one upsert item on its way to the database.
type planned struct {
	index  int
	in     Input
	old    *contactDoc // nil: a create
	doc    *contactDoc
	claims []string // lookup kinds this item must claim
	result Result
	done   bool // result is final (failed, or nothing to write)
}

// applyBatch writes a validated batch with a few round trips instead of
// several per item: one query resolves every match key, the unique values
// are claimed with one unordered InsertMany, new contacts go in with one
// InsertMany and the timeline with another. Updates are conditional
// replaces, one each. Items are applied in order: of two items that want the
// same unique value, the first gets it. The crash guarantees are those of
// write: claims first, stale claims taken over, pending timeline items.
func (h *Handle) applyBatch(ctx context.Context, mode, matchBy string, items []Input, now time.Time) ([]Result, error) {
	plan := make([]*planned, len(items))
	ids := make([]string, len(items))
	for i, in := range items {
		plan[i] = &planned{index: i, in: in, result: Result{Index: i}}
		ids[i] = lookupID(matchBy, h.index(matchBy, matchField(&in, matchBy).Value))
	}
	existing, err := h.resolve(ctx, matchBy, ids)
	if err != nil {
		return nil, err
	}

	taken := map[string]int{} // lookup id → the item that claims it in this batch
	for i, p := range plan {
		cur, found := existing[ids[i]]
		switch {
		case found && mode == ModeAdd:
			p.result.ID, p.result.Outcome, p.result.Code, p.done = cur.doc.ID, "failed", CodeDuplicate, true
			continue
		case !found && mode == ModeUpdate:
			p.result.Outcome, p.result.Code, p.done = "failed", CodeNotFound, true
			continue
		}
		var (
			id       string
			person   *personal
			typ      = ItemCreated
			changed  []string
			consents []Consent
		)
		if found {
			p.old, id, typ = cur.doc, cur.doc.ID, ItemUpdated
			person, changed, consents = merge(cur.p, p.in, now)
		} else {
			id = uuid.Must(uuid.NewV7()).String()
			person, _, consents = merge(nil, p.in, now)
		}
		tl, err := h.items(id, typ, changed, consents, now)
		if err != nil {
			return nil, err
		}
		anonymized := false
		if p.old != nil {
			anonymized = p.old.Anonymized
		}
		if p.doc, err = h.build(id, p.old, person, countryOf(p.old, p.in), anonymized, tl); err != nil {
			return nil, err
		}
		p.result.ID = id
		for _, k := range lookupKinds {
			idx, ok := p.doc.Idx[k]
			if !ok || (p.old != nil && string(p.old.Idx[k]) == string(idx)) {
				continue
			}
			lid := lookupID(k, idx)
			if j, dup := taken[lid]; dup && j != i {
				p.result.Outcome, p.result.Code, p.done = "failed", CodeConflict, true
				break
			}
			p.claims = append(p.claims, k)
		}
		if p.done {
			p.claims = nil
			continue
		}
		for _, k := range p.claims {
			taken[lookupID(k, p.doc.Idx[k])] = i
		}
	}

	if err := h.claimAll(ctx, plan); err != nil {
		return nil, err
	}
	if err := h.storeAll(ctx, mode, matchBy, plan, now); err != nil {
		return nil, err
	}
	results := make([]Result, len(plan))
	for i, p := range plan {
		results[i] = p.result
	}
	return results, nil
}

// smallBatch is the size up to which resolve finds by _id one at a time.
const smallBatch = 16

type loaded struct {
	doc *contactDoc
	p   *personal
}

// resolve finds the contacts holding the given lookup ids, in one query
// for the lookups and one for the contacts.
func (h *Handle) resolve(ctx context.Context, kind string, ids []string) (map[string]loaded, error) {
	var ls []lookupDoc
	if len(ids) <= smallBatch {
		// A few exact finds beat one $in: the embedded engine uses its
		// primary key only for a filter that is exactly {_id}.
		for _, id := range ids {
			var l lookupDoc
			err := h.lookups().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&l)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("resolve contacts: %w", err)
			}
			ls = append(ls, l)
		}
	} else {
		cur, err := h.lookups().Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		if err != nil {
			return nil, fmt.Errorf("resolve contacts: %w", err)
		}
		if err := cur.All(ctx, &ls); err != nil {
			return nil, fmt.Errorf("resolve contacts: %w", err)
		}
	}
	if len(ls) == 0 {
		return map[string]loaded{}, nil
	}
	byContact := map[string]string{}
	cids := make([]string, 0, len(ls))
	for _, l := range ls {
		byContact[l.ContactID] = l.ID
		cids = append(cids, l.ContactID)
	}
	var docs []contactDoc
	if len(cids) <= smallBatch {
		for _, cid := range cids {
			var d contactDoc
			err := h.contacts().FindOne(ctx, bson.D{{Key: "_id", Value: cid}}).Decode(&d)
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("resolve contacts: %w", err)
			}
			docs = append(docs, d)
		}
	} else {
		cur, err := h.contacts().Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: cids}}}})
		if err != nil {
			return nil, fmt.Errorf("resolve contacts: %w", err)
		}
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("resolve contacts: %w", err)
		}
	}
	out := map[string]loaded{}
	for i := range docs {
		d := &docs[i]
		lid := byContact[d.ID]
		// A lookup left behind by a crash does not find anything.
		if lookupID(kind, d.Idx[kind]) != lid {
			continue
		}
		if err := h.flush(ctx, d.Pending); err != nil {
			return nil, err
		}
		p, err := h.open(d)
		if err != nil {
			return nil, err
		}
		out[lid] = loaded{doc: d, p: p}
	}
	return out, nil
}

// claimAll claims every planned unique value with one unordered insert; a
// value already held is settled one by one (taken over if stale, else the
// item fails with conflict and gives back what it claimed).
func (h *Handle) claimAll(ctx context.Context, plan []*planned) error {
	type ref struct {
		p    *planned
		kind string
	}
	var docs []any
	var refs []ref
	for _, p := range plan {
		for _, k := range p.claims {
			docs = append(docs, lookupDoc{ID: lookupID(k, p.doc.Idx[k]), ContactID: p.doc.ID})
			refs = append(refs, ref{p, k})
		}
	}
	if len(docs) == 0 {
		return nil
	}
	_, err := h.lookups().InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	failed := map[int]bool{}
	if err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
			return fmt.Errorf("claim unique values: %w", err)
		}
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(we) {
				return fmt.Errorf("claim unique values: %w", we)
			}
			failed[we.Index] = true
		}
	}
	lost := map[*planned]bool{}
	for i, r := range refs {
		if !failed[i] || lost[r.p] {
			continue
		}
		err := h.claim(ctx, r.kind, r.p.doc.Idx[r.kind], r.p.doc.ID)
		if errors.Is(err, errConflict) {
			lost[r.p] = true
			continue
		}
		if err != nil {
			return err
		}
	}
	for p := range lost {
		for _, k := range p.claims {
			if err := h.release(ctx, k, p.doc.Idx[k], p.doc.ID); err != nil {
				return err
			}
		}
		p.claims = nil
		p.result.Outcome, p.result.Code, p.done = "failed", CodeConflict, true
		if p.old == nil {
			p.result.ID = ""
		}
	}
	return nil
}

// storeAll writes the planned contacts and their timeline items.
func (h *Handle) storeAll(ctx context.Context, mode, matchBy string, plan []*planned, now time.Time) error {
	var creates []any
	for _, p := range plan {
		if p.done {
			continue
		}
		if p.old == nil {
			creates = append(creates, p.doc)
			p.result.Outcome = "created"
			continue
		}
		res, err := h.contacts().ReplaceOne(ctx, bson.D{{Key: "_id", Value: p.doc.ID}, {Key: "version", Value: p.old.Version}}, p.doc)
		if err != nil {
			return fmt.Errorf("store contact: %w", err)
		}
		if res.MatchedCount == 0 {
			// Changed since we read it: give back the claims and apply this
			// item alone, onto the current version.
			for _, k := range p.claims {
				if err := h.release(ctx, k, p.doc.Idx[k], p.doc.ID); err != nil {
					return err
				}
			}
			r, err := h.upsertOne(ctx, mode, matchBy, p.in, now)
			if err != nil {
				return err
			}
			r.Index, p.result, p.done = p.index, r, true
			continue
		}
		for _, k := range lookupKinds {
			if idx, ok := p.old.Idx[k]; ok && string(p.doc.Idx[k]) != string(idx) {
				if err := h.release(ctx, k, idx, p.doc.ID); err != nil {
					return err
				}
			}
		}
		p.result.Outcome = "updated"
	}
	if len(creates) > 0 {
		if _, err := h.contacts().InsertMany(ctx, creates, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("store contacts: %w", err)
		}
	}
	// Copy the timeline items now (they also sit in each contact's pending
	// list, so a crash before this line loses none of them).
	var timeline []any
	var written []string
	for _, p := range plan {
		if p.doc == nil || p.done || (p.result.Outcome != "created" && p.result.Outcome != "updated") {
			continue
		}
		for _, it := range p.doc.Pending {
			timeline = append(timeline, it)
			written = append(written, it.ID)
		}
	}
	if len(timeline) > 0 {
		_, err := h.timeline().InsertMany(ctx, timeline, options.InsertMany().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if err != nil && !(errors.As(err, &bwe) && allDuplicates(bwe)) {
			return fmt.Errorf("record timeline: %w", err)
		}
		for _, id := range written {
			h.flushed.Add(id)
		}
	}
	return nil
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
