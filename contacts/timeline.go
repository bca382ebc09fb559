package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// timelineRow is a timeline item as stored: its _id is its contact's id,
// its time and its own id, so a contact's timeline is one _id range,
// newest first when read downwards. The sealed text stays bound to the
// item's own id (timelineField), not to the storage key.
type timelineRow struct {
	Key       string    `bson:"_id"`
	ID        string    `bson:"itemId"`
	ContactID string    `bson:"contactId"`
	Type      string    `bson:"type"`
	At        time.Time `bson:"at"`
	Sealed    []byte    `bson:"sealed"`
}

func timelineKey(contactID string, at time.Time, itemID string) string {
	return contactID + "/" + store.TimeKey(at) + "/" + itemID
}

// timelineOf is the range of one contact's timeline.
func timelineOf(contactID string) store.Range { return store.Prefix(contactID + "/") }

func (d timelineDoc) row() timelineRow {
	return timelineRow{Key: timelineKey(d.ContactID, d.At, d.ID), ID: d.ID, ContactID: d.ContactID, Type: d.Type, At: d.At, Sealed: d.Sealed}
}

func (r timelineRow) doc() timelineDoc {
	return timelineDoc{ID: r.ID, ContactID: r.ContactID, Type: r.Type, At: r.At, Sealed: r.Sealed}
}

// putItems stores timeline items; one stored before (a retry, a pending
// item copied twice) is left as it is.
func (h *Handle) putItems(ctx context.Context, items []timelineDoc) error {
	if len(items) == 0 {
		return nil
	}
	rows := make([]any, len(items))
	for i, it := range items {
		rows[i] = it.row()
	}
	err := h.timeline().InsertMany(ctx, rows)
	var bwe mongo.BulkWriteException
	if err != nil && !(errors.As(err, &bwe) && allDuplicates(bwe)) {
		return err
	}
	return nil
}

// flush copies pending timeline items; copying one twice is harmless, and
// an item this process already copied is not tried again.
func (h *Handle) flush(ctx context.Context, items []timelineDoc) error {
	var todo []timelineDoc
	for _, it := range items {
		if _, done := h.flushed.Get(it.ID); !done {
			todo = append(todo, it)
		}
	}
	if err := h.putItems(ctx, todo); err != nil {
		return fmt.Errorf("record timeline: %w", err)
	}
	for _, it := range todo {
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
	cur, err := h.timeline().Find(ctx, timelineOf(contactID))
	if err != nil {
		return fmt.Errorf("scrub timeline: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var row timelineRow
		if err := cur.Decode(&row); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		d := row.doc()
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
		row.Sealed = sealed
		if _, err := h.timeline().ReplaceID(ctx, row.Key, row); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
	}
	return cur.Err()
}

// Timeline returns a page of a contact's timeline, newest first.
func (h *Handle) Timeline(ctx context.Context, id string, limit int, cursor string) ([]TimelineItem, string, error) {
	if _, _, err := h.load(ctx, id); err != nil {
		return nil, "", err
	}
	r := timelineOf(id)
	r.Desc, r.Limit = true, limit+1
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
		r.After = timelineKey(id, time.UnixMilli(ms).UTC(), last[1])
	}
	rows, err := store.All[timelineRow](ctx, h.timeline(), r)
	if err != nil {
		return nil, "", fmt.Errorf("timeline: %w", err)
	}
	docs := make([]timelineDoc, len(rows))
	for i, row := range rows {
		docs[i] = row.doc()
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
	if err := h.timeline().InsertOne(ctx, d.row()); err != nil {
		return TimelineItem{}, fmt.Errorf("record event: %w", err)
	}
	return h.item(d)
}

// LegacyTimelineRow maps a timeline item of the first storage layout
// ({_id: item id, contactId, type, at, sealed}) to its row in this one (its
// _id the contact, time and item id). The sealed text is bound to the item
// id and is kept as it is.
func LegacyTimelineRow(old bson.Raw) (bson.Raw, error) {
	var d timelineDoc
	if err := bson.Unmarshal(old, &d); err != nil {
		return nil, fmt.Errorf("timeline item of the first layout: %w", err)
	}
	if d.ID == "" || d.ContactID == "" {
		return nil, errors.New("timeline item of the first layout without its ids")
	}
	return bson.Marshal(d.row())
}
