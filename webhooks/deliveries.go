package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// keepFor is how long a delivery (and a failed one's body) is kept.
const keepFor = 30 * 24 * time.Hour

// Delivery is a delivery as the API shows it.
type Delivery struct {
	ID             string     `json:"id"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastAttemptAt  *time.Time `json:"lastAttemptAt"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
	LastStatusCode *int       `json:"lastStatusCode"`
	LastError      *string    `json:"lastError"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// deliveryDoc is one event's delivery to one endpoint, a versioned
// document: every attempt is the claim of its next version.
type deliveryDoc struct {
	ID             string     `bson:"_id"`
	Version        int64      `bson:"version"`
	EndpointID     string     `bson:"endpointId"`
	EventID        string     `bson:"eventId"`
	EventType      string     `bson:"eventType"`
	Subject        string     `bson:"subject,omitempty"` // the resource the event shows (Forget)
	Status         string     `bson:"status"`
	Attempts       int        `bson:"attempts"`
	LastAttemptAt  *time.Time `bson:"lastAttemptAt,omitempty"`
	NextAttemptAt  *time.Time `bson:"nextAttemptAt,omitempty"`
	LastStatusCode *int       `bson:"lastStatusCode,omitempty"`
	LastError      *string    `bson:"lastError,omitempty"`
	CreatedAt      time.Time  `bson:"createdAt"`
	// InFlight marks an attempt being made: NextAttemptAt is then the end
	// of its lease (another process tries again if it never settles).
	InFlight bool `bson:"inFlight,omitempty"`
}

func (d *deliveryDoc) view() Delivery {
	v := Delivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
		LastAttemptAt: d.LastAttemptAt, LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: d.CreatedAt,
	}
	if d.Status == StatusPending {
		v.NextAttemptAt = d.NextAttemptAt
	}
	return v
}

// bodyDoc is a delivery's body until it is delivered.
type bodyDoc struct {
	ID   string `bson:"_id"`
	Body []byte `bson:"body"`
}

// deliveryEntries are a delivery's index keys: the endpoint's log, newest
// last in _id order, the same by status, and by the resource it shows.
func deliveryEntries(d *deliveryDoc) []string {
	t := store.TimeKey(d.CreatedAt)
	out := []string{
		"d/" + d.EndpointID + "/" + t + "/" + d.ID,
		"s/" + d.EndpointID + "/" + d.Status + "/" + t + "/" + d.ID,
	}
	if d.Subject != "" {
		out = append(out, "r/"+d.Subject+"/"+d.ID)
	}
	return out
}

func (s *Service) deliveriesOf(o Owner) *store.Versioned[deliveryDoc, struct{}] {
	c := s.colls(o)
	return &store.Versioned[deliveryDoc, struct{}]{
		Docs: c.deliveries, Claims: c.deliveryClaims, Entries: c.entries, Index: deliveryEntries,
		Version: func(d *deliveryDoc) int64 { return d.Version },
		Now:     s.cfg.Now,
	}
}

func deliveryID(eventID, endpointID string) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + endpointID))
	return "wd_" + hex.EncodeToString(h[:16])
}

// newDelivery makes the delivery of an event to an endpoint, due now, with
// its body; making it again (a retry after a crash) changes nothing.
func (s *Service) newDelivery(ctx context.Context, o Owner, endpointID, evID, subject, typ string, at time.Time, raw []byte) (*deliveryDoc, error) {
	id := deliveryID(evID, endpointID)
	v := s.deliveriesOf(o)
	// Made already (the same event held again: an inbound webhook Twilio
	// retried, a fan-out redone): nothing more, above all no body again.
	if d, err := v.Get(ctx, id); err == nil {
		return d, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	sealed, err := s.crypt(ctx, o, bodyField("b", id), raw, true)
	if err != nil {
		return nil, err
	}
	c := s.colls(o)
	if err := insertAll(ctx, c.bodies, []any{bodyDoc{ID: id, Body: sealed}}); err != nil {
		return nil, err
	}
	now := s.now()
	due := dueKey(now, kindDelivery, o, id)
	if err := s.addDue(ctx, due); err != nil {
		return nil, err
	}
	d := &deliveryDoc{
		ID: id, Version: 1, EndpointID: endpointID, EventID: evID, EventType: typ, Subject: subject, Status: StatusPending,
		NextAttemptAt: &now, CreatedAt: at,
	}
	if err := v.Create(ctx, id, d, struct{}{}); err != nil && !errors.Is(err, store.ErrExists) {
		return nil, err
	}
	s.poke(due)
	return d, nil
}

// Test queues a webhook.test event to endpoint id alone.
func (s *Service) Test(ctx context.Context, o Owner, id string) (Delivery, error) {
	ep, err := s.endpoint(ctx, o, id)
	if err != nil {
		return Delivery{}, err
	}
	evID := newID("evt_")
	now := s.now()
	raw, err := jsonBody(body{ID: evID, Type: TestEvent, CreatedAt: switchboard.FormatTime(now), CustomerID: customerOf(o),
		Data: map[string]string{"endpointId": ep.ID}})
	if err != nil {
		return Delivery{}, err
	}
	d, err := s.newDelivery(ctx, o, ep.ID, evID, "", TestEvent, now, raw)
	if err != nil {
		return Delivery{}, err
	}
	return d.view(), nil
}

// customerOf is the customerId of an owner's own events (a partner's test
// event is about no customer: null).
func customerOf(o Owner) *string {
	if o.Partner {
		return nil
	}
	return &o.ID
}

// ListInput selects a page of an endpoint's deliveries, newest first.
type ListInput struct {
	Status string // "" for all
	Limit  int
	After  string // the cursor of the previous page
}

// Deliveries lists an endpoint's deliveries, newest first; next is the
// cursor of the following page ("" at the end).
func (s *Service) Deliveries(ctx context.Context, o Owner, endpointID string, in ListInput) (out []Delivery, next string, err error) {
	if _, err := s.endpoint(ctx, o, endpointID); err != nil {
		return nil, "", err
	}
	switch in.Status {
	case "", StatusPending, StatusDelivered, StatusFailed:
	default:
		return nil, "", switchboard.Invalid("status", "must be pending, delivered or failed")
	}
	p := "d/" + endpointID + "/"
	if in.Status != "" {
		p = "s/" + endpointID + "/" + in.Status + "/"
	}
	r := store.Prefix(p)
	r.Desc, r.Limit = true, in.Limit+1
	if in.After != "" {
		r.After = p + in.After
	}
	keep := func(d *deliveryDoc) bool { return in.Status == "" || d.Status == in.Status }
	docs, keys, err := s.deliveriesOf(o).Scan(ctx, r, keep)
	if err != nil {
		return nil, "", err
	}
	if len(docs) > in.Limit {
		docs = docs[:in.Limit]
		next = keys[in.Limit-1][len(p):]
	}
	out = make([]Delivery, len(docs))
	for i, d := range docs {
		out[i] = d.view()
	}
	return out, next, nil
}

// Retry sends a failed delivery again now.
func (s *Service) Retry(ctx context.Context, o Owner, endpointID, id string) (Delivery, error) {
	if _, err := s.endpoint(ctx, o, endpointID); err != nil {
		return Delivery{}, err
	}
	v := s.deliveriesOf(o)
	if !validID(id, "wd_") {
		return Delivery{}, ErrNotFound
	}
	cur, err := v.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && cur.EndpointID != endpointID) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, err
	}
	if cur.Status != StatusFailed {
		return Delivery{}, ErrInvalidTransition
	}
	now := s.now()
	due := dueKey(now, kindDelivery, o, id)
	if err := s.addDue(ctx, due); err != nil {
		return Delivery{}, err
	}
	d, err := v.Update(ctx, id, cur.Version, func(cur *deliveryDoc) (*deliveryDoc, struct{}, error) {
		if cur.Status != StatusFailed {
			return nil, struct{}{}, ErrInvalidTransition
		}
		nxt := *cur
		nxt.Version++
		nxt.Status, nxt.NextAttemptAt, nxt.InFlight = StatusPending, &now, false
		return &nxt, struct{}{}, nil
	}, store.UpdateOptions[deliveryDoc]{})
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return Delivery{}, ErrInvalidTransition // another retry, or the worker, moved it
	}
	if err != nil {
		return Delivery{}, err
	}
	s.poke(due)
	return d.view(), nil
}

// purgeDelivery removes a delivery for good: its document, claims, index
// entries and body.
func (s *Service) purgeDelivery(ctx context.Context, o Owner, d *deliveryDoc) error {
	c := s.colls(o)
	if _, err := c.entries.DeleteIDs(ctx, deliveryEntriesAll(d)); err != nil {
		return err
	}
	if _, err := c.bodies.DeleteID(ctx, d.ID); err != nil {
		return err
	}
	if _, err := c.deliveryClaims.DeleteRange(ctx, store.Prefix(d.ID+":")); err != nil {
		return err
	}
	_, err := c.deliveries.DeleteID(ctx, d.ID)
	return err
}

// deliveryEntriesAll are every index key a delivery may have had (one per
// status it went through).
func deliveryEntriesAll(d *deliveryDoc) []string {
	var out []string
	for _, st := range []string{StatusPending, StatusDelivered, StatusFailed} {
		x := *d
		x.Status = st
		for _, k := range deliveryEntries(&x) {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}
