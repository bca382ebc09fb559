package contacts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard"
)

// flush copies pending timeline items; copying one twice is harmless, and
// an item this process already copied is not tried again.
func (h *Handle) flush(ctx context.Context, items []timelineDoc) error {
	for _, it := range items {
		if _, done := h.flushed.Get(it.ID); done {
			continue
		}
		if _, err := h.timeline().InsertOne(ctx, it); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("record timeline: %w", err)
		}
		h.flushed.Add(it.ID, struct{}{})
	}
	return nil
}

func (h *Handle) newItem(contactID, typ string, at time.Time, p timelinePayload) (timelineDoc, error) {
	id := uuid.Must(uuid.NewV7()).String()
	b, err := json.Marshal(p)
	if err != nil {
		return timelineDoc{}, err
	}
	sealed, err := h.cipher.Seal(timelineField(id), b)
	if err != nil {
		return timelineDoc{}, err
	}
	return timelineDoc{ID: id, ContactID: contactID, Type: typ, At: at, Sealed: sealed}, nil
}

// items builds the timeline items of a change.
func (h *Handle) items(id, typ string, changed []string, consents []Consent, now time.Time) ([]timelineDoc, error) {
	var out []timelineDoc
	if typ != "" {
		data := map[string]any{}
		if changed != nil {
			data["fields"] = changed
		}
		it, err := h.newItem(id, typ, now, timelinePayload{Data: data})
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	for _, c := range consents {
		it, err := h.newItem(id, ItemConsent, now, timelinePayload{Data: map[string]any{"topic": c.Topic, "value": c.Value, "source": c.Source}})
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// scrubTimeline erases the texts of a contact's timeline items.
func (h *Handle) scrubTimeline(ctx context.Context, contactID string) error {
	cur, err := h.timeline().Find(ctx, bson.D{{Key: "contactId", Value: contactID}})
	if err != nil {
		return fmt.Errorf("scrub timeline: %w", err)
	}
	var docs []timelineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("scrub timeline: %w", err)
	}
	for _, d := range docs {
		var p timelinePayload
		b, err := h.cipher.Open(timelineField(d.ID), d.Sealed)
		if err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		if p.Message == nil && p.SourceURL == nil && p.InitiatedBy == nil {
			continue
		}
		p.Message, p.SourceURL, p.InitiatedBy = nil, nil, nil
		if b, err = json.Marshal(p); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		sealed, err := h.cipher.Seal(timelineField(d.ID), b)
		if err != nil {
			return err
		}
		if _, err := h.timeline().UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "sealed", Value: sealed}}}}); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
	}
	return nil
}

// Timeline returns a page of a contact's timeline, newest first.
func (h *Handle) Timeline(ctx context.Context, id string, limit int, cursor string) ([]TimelineItem, string, error) {
	if _, _, err := h.load(ctx, id); err != nil {
		return nil, "", err
	}
	filter := bson.D{{Key: "contactId", Value: id}}
	if cursor != "" {
		// The cursor is the last item's (at, id): items sort by both.
		last, err := switchboard.DecodeCursor(cursor, 2)
		if err != nil {
			return nil, "", err
		}
		ms, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		at, lastID := time.UnixMilli(ms).UTC(), last[1]
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "at", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: lastID}}}},
		}})
	}
	cur, err := h.timeline().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("timeline: %w", err)
	}
	var docs []timelineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("timeline: %w", err)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := docs[limit-1]
		next = switchboard.EncodeCursor(strconv.FormatInt(last.At.UnixMilli(), 10), last.ID)
	}
	out := make([]TimelineItem, len(docs))
	for i, d := range docs {
		it, err := h.item(d)
		if err != nil {
			return nil, "", err
		}
		out[i] = it
	}
	return out, next, nil
}

func (h *Handle) item(d timelineDoc) (TimelineItem, error) {
	b, err := h.cipher.Open(timelineField(d.ID), d.Sealed)
	if err != nil {
		return TimelineItem{}, fmt.Errorf("open timeline item: %w", err)
	}
	var p timelinePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return TimelineItem{}, err
	}
	return TimelineItem{ID: d.ID, Type: d.Type, At: d.At.UTC(), EventType: p.EventType, Message: p.Message,
		SourceURL: p.SourceURL, InitiatedBy: p.InitiatedBy, MessageID: p.MessageID, Data: p.Data}, nil
}

// AddEvent records an external event on a contact's timeline.
func (h *Handle) AddEvent(ctx context.Context, id string, ev ExternalEvent) (TimelineItem, error) {
	var errs []switchboard.FieldError
	if n := utf8.RuneCountInString(ev.Type); n < 1 || n > 100 {
		errs = append(errs, switchboard.FieldError{Field: "type", Message: "must be 1 to 100 characters"})
	}
	if n := utf8.RuneCountInString(ev.Message); n < 1 || n > 2000 {
		errs = append(errs, switchboard.FieldError{Field: "message", Message: "must be 1 to 2000 characters"})
	}
	if ev.SourceURL != nil {
		u, err := url.Parse(*ev.SourceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*ev.SourceURL) > 2000 {
			errs = append(errs, switchboard.FieldError{Field: "sourceUrl", Message: "must be an http(s) URL"})
		}
	}
	if ev.InitiatedBy != nil {
		if n := utf8.RuneCountInString(strings.TrimSpace(*ev.InitiatedBy)); n < 1 || n > 200 {
			errs = append(errs, switchboard.FieldError{Field: "initiatedBy", Message: "must be 1 to 200 characters"})
		}
	}
	now := h.nowMs()
	at := now
	if ev.OccurredAt != nil {
		at = ev.OccurredAt.UTC().Truncate(time.Millisecond)
		if at.After(now.Add(5 * time.Minute)) {
			errs = append(errs, switchboard.FieldError{Field: "occurredAt", Message: "must not be in the future"})
		}
	}
	if len(errs) > 0 {
		return TimelineItem{}, &switchboard.ValidationError{Fields: errs}
	}
	if _, _, err := h.load(ctx, id); err != nil {
		return TimelineItem{}, err
	}
	typ, msg := ev.Type, ev.Message
	d, err := h.newItem(id, ItemExternalEvent, at, timelinePayload{EventType: &typ, Message: &msg, SourceURL: ev.SourceURL, InitiatedBy: ev.InitiatedBy})
	if err != nil {
		return TimelineItem{}, err
	}
	if _, err := h.timeline().InsertOne(ctx, d); err != nil {
		return TimelineItem{}, fmt.Errorf("record event: %w", err)
	}
	return h.item(d)
}
