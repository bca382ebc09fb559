package messages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 2)
		if err != nil {
			return nil, "", err
		}
		ms, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		at := time.UnixMilli(ms).UTC()
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "createdAt", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: last[1]}}}},
		}})
	}
	cur, err := h.messages().Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(q.Limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("list messages: %w", err)
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
