package messages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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
	filter := bson.D{}
	if q.Phone != "" {
		n, ok := switchboard.NormalizePhone(q.Phone, "")
		if !ok {
			return []Message{}, "", nil // like a contact lookup: nothing matches
		}
		filter = append(filter, bson.E{Key: "partyIdx", Value: h.phoneIdx(n)})
	}
	if len(errs) > 0 {
		return nil, "", &switchboard.ValidationError{Fields: errs}
	}
	if q.ContactID != "" {
		filter = append(filter, bson.E{Key: "contactId", Value: q.ContactID})
	}
	if q.Direction != "" {
		filter = append(filter, bson.E{Key: "direction", Value: q.Direction})
	}
	if q.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: q.Status})
	}
	var after *messageDoc
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 2)
		if err != nil {
			return nil, "", err
		}
		ms, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		after = &messageDoc{ID: last[1], CreatedAt: time.UnixMilli(ms).UTC()}
	}
	// The customer's range, filtered by the engine, ordered here: messages
	// with derived ids (an Idempotency-Key, a MessageSid) are not in time
	// order by _id.
	all, err := store.All[messageDoc](ctx, h.messages(), store.Range{Where: filter})
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	newer := func(a, b *messageDoc) bool {
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	}
	docs := make([]messageDoc, 0, q.Limit+1)
	for i := range all {
		if after == nil || newer(after, &all[i]) {
			docs = append(docs, all[i])
		}
	}
	sort.Slice(docs, func(i, j int) bool { return newer(&docs[i], &docs[j]) })
	if len(docs) > q.Limit+1 {
		docs = docs[:q.Limit+1]
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
