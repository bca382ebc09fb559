package contacts

import (
	"context"
	"fmt"

	"github.com/switchboard/switchboard/store"
)

// Each calls fn for every contact of the customer, one at a time off a
// cursor (constant memory in the number of contacts), in _id order.
func (h *Handle) Each(ctx context.Context, fn func(Contact) error) error {
	cur, err := h.contacts().Find(ctx, store.Range{})
	if err != nil {
		return fmt.Errorf("each contact: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var doc contactDoc
		if err := cur.Decode(&doc); err != nil {
			return fmt.Errorf("each contact: %w", err)
		}
		p, err := h.open(&doc)
		if err != nil {
			return err
		}
		if err := fn(h.view(&doc, p)); err != nil {
			return err
		}
	}
	return cur.Err()
}

// EachTimelineItem calls fn for every timeline item of every contact of the
// customer, one at a time off a cursor, with the item's contact id.
func (h *Handle) EachTimelineItem(ctx context.Context, fn func(contactID string, it TimelineItem) error) error {
	cur, err := h.timeline().Find(ctx, store.Range{})
	if err != nil {
		return fmt.Errorf("each timeline item: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var row timelineRow
		if err := cur.Decode(&row); err != nil {
			return fmt.Errorf("each timeline item: %w", err)
		}
		d := row.doc()
		it, err := h.item(d)
		if err != nil {
			return err
		}
		if err := fn(d.ContactID, it); err != nil {
			return err
		}
	}
	return cur.Err()
}
