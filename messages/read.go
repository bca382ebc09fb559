package messages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// Get returns one message.
func (h *Handle) Get(ctx context.Context, id string) (Message, error) {
	d, err := h.docs.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Message{}, ErrNotFound
	}
	if err != nil {
		return Message{}, err
	}
	return h.view(d)
}

// Query filters a list of messages; empty members do not filter.
type Query struct {
	ContactID, Direction, Status, Phone string
	Limit                               int
	Cursor                              string
}

// List returns a page of messages, newest first, and the next cursor.
func (h *Handle) List(ctx context.Context, q Query) ([]Message, string, error) {
	var errs []switchboard.FieldError
	if q.Direction != "" && q.Direction != Inbound && q.Direction != Outbound {
		errs = append(errs, switchboard.FieldError{Field: "direction", Message: "must be inbound or outbound"})
	}
	if q.Status != "" && !slices.Contains(Statuses, q.Status) {
		errs = append(errs, switchboard.FieldError{Field: "status", Message: "must be a message status"})
	}
	var phoneIdx []byte
	if q.Phone != "" {
		n, ok := switchboard.NormalizePhone(q.Phone, "")
		if !ok {
			return []Message{}, "", nil // like a contact lookup: nothing matches
		}
		phoneIdx = h.phoneIdx(n)
	}
	if len(errs) > 0 {
		return nil, "", &switchboard.ValidationError{Fields: errs}
	}
	r := h.listRange(q, phoneIdx)
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 2)
		if err != nil {
			return nil, "", err
		}
		ms, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		r.After = r.From + messageOrder(time.UnixMilli(ms).UTC(), last[1])
	}
	r.Limit = q.Limit + 1
	// The range is the most selective filter's; the others are checked on
	// each message.
	keep := func(d *messageDoc) bool {
		return (q.ContactID == "" || (d.ContactID != nil && *d.ContactID == q.ContactID)) &&
			(phoneIdx == nil || slices.ContainsFunc(d.PartyIdx, func(b []byte) bool { return bytes.Equal(b, phoneIdx) })) &&
			(q.Status == "" || d.Status == q.Status) && (q.Direction == "" || d.Direction == q.Direction)
	}
	found, _, err := h.docs.Scan(ctx, r, keep)
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	docs := make([]messageDoc, len(found))
	for i, d := range found {
		docs[i] = *d
	}
	next := ""
	if len(docs) > q.Limit {
		docs = docs[:q.Limit]
		last := docs[q.Limit-1]
		next = switchboard.EncodeCursor(strconv.FormatInt(last.CreatedAt.UnixMilli(), 10), last.ID)
	}
	out := make([]Message, len(docs))
	for i := range docs {
		m, err := h.view(&docs[i])
		if err != nil {
			return nil, "", err
		}
		out[i] = m
	}
	return out, next, nil
}
