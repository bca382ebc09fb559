package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// ScopeError is a subscription to an event type the token's scopes do not
// allow; it matches ErrMissingScope.
type ScopeError struct{ Event, Scope string }

func (e *ScopeError) Error() string {
	return "subscribing to " + e.Event + " needs the " + e.Scope + " scope"
}

// Is makes errors.Is(err, ErrMissingScope) true.
func (e *ScopeError) Is(target error) bool { return target == ErrMissingScope }

// secretOverlap is how long a rotated-out secret still signs.
const secretOverlap = 24 * time.Hour

// Endpoint is an endpoint as the API shows it. Secret is set only in the
// answers of a create and a rotation.
type Endpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description *string   `json:"description"`
	Enabled     bool      `json:"enabled"`
	Secret      string    `json:"secret,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Version     int64     `json:"version"`
}

// endpointDoc is an endpoint as stored (a versioned document).
type endpointDoc struct {
	ID          string    `bson:"_id"`
	Version     int64     `bson:"version"`
	URL         []byte    `bson:"url"` // sealed for a tenant owner: a URL may carry a token
	Events      []string  `bson:"events"`
	Description *string   `bson:"description,omitempty"`
	Enabled     bool      `bson:"enabled"`
	Secrets     []secret  `bson:"secrets"` // newest first; at most two
	Slot        int       `bson:"slot"`
	CreatedAt   time.Time `bson:"createdAt"`
	UpdatedAt   time.Time `bson:"updatedAt"`
	// FailingSince is the first failed attempt since the last 2xx.
	FailingSince *time.Time `bson:"failingSince,omitempty"`
}

// secret is one signing secret, sealed (tenant: the customer's key;
// partner: the master key). Until is when a rotated-out one stops signing.
type secret struct {
	Sealed []byte     `bson:"sealed"`
	Until  *time.Time `bson:"until,omitempty"`
}

func urlField(id string) crypto.Field {
	return crypto.Field{Collection: "webhook_endpoints", DocumentID: id, Name: "url"}
}

// url is the endpoint's URL, opened.
func (s *Service) url(ctx context.Context, o Owner, d *endpointDoc) (string, error) {
	b, err := s.crypt(ctx, o, urlField(d.ID), d.URL, false)
	return string(b), err
}

func (s *Service) sealURL(ctx context.Context, o Owner, id, url string) ([]byte, error) {
	return s.crypt(ctx, o, urlField(id), []byte(url), true)
}

func (s *Service) view(ctx context.Context, o Owner, d *endpointDoc) (Endpoint, error) {
	url, err := s.url(ctx, o, d)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{
		ID: d.ID, URL: url, Events: slices.Clone(d.Events), Description: d.Description, Enabled: d.Enabled,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Version: d.Version,
	}, nil
}

func (s *Service) endpointsOf(o Owner) *store.Versioned[endpointDoc, struct{}] {
	c := s.colls(o)
	return &store.Versioned[endpointDoc, struct{}]{
		Docs: c.endpoints, Claims: c.endpointClaims,
		Version: func(d *endpointDoc) int64 { return d.Version },
		Now:     s.cfg.Now,
	}
}

func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// Input is the body of a create or an update. Nil fields are unchanged;
// an empty Description clears it.
type Input struct {
	URL         *string
	Events      []string
	Description *string
	Enabled     *bool
}

// validate checks in against the owner's event list and the caller's
// scopes (nil scopes: a partner, who needs none).
func (s *Service) validate(ctx context.Context, o Owner, in Input, create bool, scopes []string) error {
	verr := &switchboard.ValidationError{}
	if in.URL == nil {
		if create {
			verr.Add("url", "is required")
		}
	} else if err := s.cfg.Guard.CheckURL(ctx, *in.URL); err != nil {
		verr.Add("url", err.Error())
	}
	if in.Events == nil {
		if create {
			verr.Add("events", "is required")
		}
	} else {
		if len(in.Events) == 0 {
			verr.Add("events", "must name at least one event type, or \"*\"")
		}
		known := EventTypes(o)
		for i, e := range in.Events {
			field := "events[" + strconv.Itoa(i) + "]"
			switch {
			case e == "*" && len(in.Events) == 1:
			case !slices.Contains(known, e):
				verr.Add(field, "is not an event type this caller may subscribe to")
			case slices.Index(in.Events, e) != i:
				verr.Add(field, "is named twice")
			}
		}
	}
	if in.Description != nil && (utf8.RuneCountInString(*in.Description) > 500 || !utf8.ValidString(*in.Description)) {
		verr.Add("description", "must be at most 500 characters")
	}
	if err := verr.Err(); err != nil {
		return err
	}
	if !o.Partner && in.Events != nil {
		for _, e := range expand(o, in.Events) {
			for _, te := range tenantEvents {
				if te.typ == e && te.scope != "" && !slices.Contains(scopes, te.scope) {
					return &ScopeError{Event: e, Scope: te.scope}
				}
			}
		}
	}
	return nil
}

// expand turns ["*"] into the owner's whole list.
func expand(o Owner, events []string) []string {
	if len(events) == 1 && events[0] == "*" {
		return EventTypes(o)
	}
	return events
}

// subscribed reports whether d takes events of type typ.
func (d *endpointDoc) subscribed(o Owner, typ string) bool {
	return d.Enabled && typ != TestEvent && slices.Contains(expand(o, d.Events), typ)
}

func newID(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Create makes an endpoint; the answer carries its secret, shown only here.
func (s *Service) Create(ctx context.Context, o Owner, in Input, scopes []string) (Endpoint, error) {
	if err := s.validate(ctx, o, in, true, scopes); err != nil {
		return Endpoint{}, err
	}
	id := newID("we_")
	slot, err := s.takeSlot(ctx, o, id)
	if err != nil {
		return Endpoint{}, err
	}
	plain, err := NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	sealed, err := s.sealSecret(ctx, o, id, plain)
	if err != nil {
		return Endpoint{}, err
	}
	sealedURL, err := s.sealURL(ctx, o, id, *in.URL)
	if err != nil {
		return Endpoint{}, err
	}
	now := s.now()
	d := &endpointDoc{
		ID: id, Version: 1, URL: sealedURL, Events: in.Events, Description: nonEmpty(in.Description), Enabled: true,
		Secrets: []secret{{Sealed: sealed}}, Slot: slot, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.endpointsOf(o).Create(ctx, id, d, struct{}{}); err != nil {
		return Endpoint{}, err
	}
	v, err := s.view(ctx, o, d)
	v.Secret = plain
	return v, err
}

// slotDoc holds one of an owner's MaxEndpoints places: its insert is the
// claim that keeps a 21st endpoint out however many creates race.
type slotDoc struct {
	ID         string    `bson:"_id"`
	EndpointID string    `bson:"endpointId"`
	At         time.Time `bson:"at"`
}

// slotGrace is how long a slot may wait for its endpoint's create.
const slotGrace = time.Minute

func (s *Service) takeSlot(ctx context.Context, o Owner, endpointID string) (int, error) {
	c := s.colls(o)
	for pass := 0; pass < 2; pass++ {
		for n := range MaxEndpoints {
			err := c.slots.InsertOne(ctx, slotDoc{ID: strconv.Itoa(n), EndpointID: endpointID, At: s.now()})
			if err == nil {
				return n, nil
			}
			if !mongo.IsDuplicateKeyError(err) {
				return 0, fmt.Errorf("webhook endpoint slot: %w", err)
			}
		}
		// Every slot is taken: free those a crashed create left (no
		// endpoint behind them), then try once more.
		if pass == 0 {
			if err := s.freeOrphanSlots(ctx, o); err != nil {
				return 0, err
			}
		}
	}
	return 0, ErrLimitReached
}

func (s *Service) freeOrphanSlots(ctx context.Context, o Owner) error {
	c := s.colls(o)
	slots, err := store.All[slotDoc](ctx, c.slots, store.Range{Limit: MaxEndpoints})
	if err != nil {
		return err
	}
	for _, sl := range slots {
		if s.now().Sub(sl.At) < slotGrace {
			continue
		}
		if _, err := s.endpointsOf(o).Get(ctx, sl.EndpointID); errors.Is(err, store.ErrNotFound) {
			if _, err := c.slots.DeleteID(ctx, sl.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func secretField(o Owner, endpointID string) crypto.Field {
	return crypto.Field{Collection: "webhook_endpoints", DocumentID: endpointID, Name: "secret"}
}

func (s *Service) sealSecret(ctx context.Context, o Owner, endpointID, plain string) ([]byte, error) {
	if o.Partner {
		return s.cfg.Master.WrapSecret("webhook secret "+o.ID+"/"+endpointID, []byte(plain))
	}
	c, err := s.cfg.Cipher(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	return c.Seal(secretField(o, endpointID), []byte(plain))
}

// signing returns the secrets that sign now, newest first.
func (s *Service) signing(ctx context.Context, o Owner, d *endpointDoc) ([]string, error) {
	var out []string
	var c *crypto.Cipher
	for _, sec := range d.Secrets {
		if sec.Until != nil && !s.now().Before(*sec.Until) {
			continue
		}
		var plain []byte
		var err error
		if o.Partner {
			plain, err = s.cfg.Master.UnwrapSecret("webhook secret "+o.ID+"/"+d.ID, sec.Sealed)
		} else {
			if c == nil {
				if c, err = s.cfg.Cipher(ctx, o.ID); err != nil {
					return nil, err
				}
			}
			plain, err = c.Open(secretField(o, d.ID), sec.Sealed)
		}
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		out = append(out, string(plain))
	}
	return out, nil
}

// Get returns one endpoint.
func (s *Service) Get(ctx context.Context, o Owner, id string) (Endpoint, error) {
	d, err := s.endpoint(ctx, o, id)
	if err != nil {
		return Endpoint{}, err
	}
	return s.view(ctx, o, d)
}

func (s *Service) endpoint(ctx context.Context, o Owner, id string) (*endpointDoc, error) {
	if !validID(id, "we_") {
		return nil, ErrNotFound
	}
	d, err := s.endpointsOf(o).Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	return d, err
}

func validID(id, prefix string) bool {
	if len(id) != len(prefix)+32 || id[:len(prefix)] != prefix {
		return false
	}
	_, err := hex.DecodeString(id[len(prefix):])
	return err == nil
}

// List returns the owner's endpoints (at most MaxEndpoints: one page).
func (s *Service) List(ctx context.Context, o Owner) ([]Endpoint, error) {
	v := s.endpointsOf(o)
	docs, err := store.All[endpointDoc](ctx, v.Docs, store.Range{Limit: MaxEndpoints + 1})
	if err != nil {
		return nil, err
	}
	out := make([]Endpoint, 0, len(docs))
	for _, d := range docs {
		// The document is a cache of its claims: read through them.
		cur, err := v.Get(ctx, d.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v, err := s.view(ctx, o, cur)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Update changes an endpoint at version expected.
func (s *Service) Update(ctx context.Context, o Owner, id string, expected int64, in Input, scopes []string) (Endpoint, error) {
	if _, err := s.endpoint(ctx, o, id); err != nil {
		return Endpoint{}, err
	}
	if err := s.validate(ctx, o, in, false, scopes); err != nil {
		return Endpoint{}, err
	}
	var sealedURL []byte
	if in.URL != nil {
		var err error
		if sealedURL, err = s.sealURL(ctx, o, id, *in.URL); err != nil {
			return Endpoint{}, err
		}
	}
	wasEnabled := false
	d, err := s.change(ctx, o, id, expected, func(cur *endpointDoc) *endpointDoc {
		nxt := *cur
		wasEnabled = cur.Enabled
		if sealedURL != nil {
			nxt.URL = sealedURL
		}
		if in.Events != nil {
			nxt.Events = in.Events
		}
		if in.Description != nil {
			nxt.Description = nonEmpty(in.Description)
		}
		if in.Enabled != nil {
			if *in.Enabled && !cur.Enabled {
				nxt.FailingSince = nil // a fresh start
			}
			nxt.Enabled = *in.Enabled
		}
		return &nxt
	})
	if err != nil {
		return Endpoint{}, err
	}
	if wasEnabled && !d.Enabled {
		// Disabled: its pending deliveries fail now (a retry sends them
		// once it is enabled again).
		if err := s.failPending(ctx, o, id); err != nil {
			return Endpoint{}, err
		}
	}
	return s.view(ctx, o, d)
}

// change applies f to endpoint id at version expected (store.AnyVersion
// for the worker's own changes); f returning nil changes nothing.
func (s *Service) change(ctx context.Context, o Owner, id string, expected int64, f func(cur *endpointDoc) *endpointDoc) (*endpointDoc, error) {
	d, err := s.endpointsOf(o).Update(ctx, id, expected, func(cur *endpointDoc) (*endpointDoc, struct{}, error) {
		nxt := f(cur)
		if nxt == nil {
			return nil, struct{}{}, nil
		}
		nxt.Version = cur.Version + 1
		nxt.UpdatedAt = s.now()
		return nxt, struct{}{}, nil
	}, store.UpdateOptions[endpointDoc]{})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		return nil, &switchboard.VersionConflictError{Current: ce.Current}
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNotFound
	}
	return d, err
}

// Rotate gives the endpoint a new secret; the previous one signs too for
// 24 h. A rotation within that time ends the oldest at once: at most two
// secrets sign.
func (s *Service) Rotate(ctx context.Context, o Owner, id string) (Endpoint, error) {
	if _, err := s.endpoint(ctx, o, id); err != nil {
		return Endpoint{}, err
	}
	plain, err := NewSecret()
	if err != nil {
		return Endpoint{}, err
	}
	sealed, err := s.sealSecret(ctx, o, id, plain)
	if err != nil {
		return Endpoint{}, err
	}
	d, err := s.change(ctx, o, id, store.AnyVersion, func(cur *endpointDoc) *endpointDoc {
		nxt := *cur
		until := s.now().Add(secretOverlap)
		prev := cur.Secrets[0]
		prev.Until = &until
		nxt.Secrets = []secret{{Sealed: sealed}, prev}
		return &nxt
	})
	if err != nil {
		return Endpoint{}, err
	}
	v, err := s.view(ctx, o, d)
	v.Secret = plain
	return v, err
}

// Delete removes an endpoint; its pending deliveries are dropped (the
// worker finds no endpoint for them), its log goes with it.
func (s *Service) Delete(ctx context.Context, o Owner, id string) error {
	d, err := s.endpoint(ctx, o, id)
	if err != nil {
		return err
	}
	err = s.endpointsOf(o).Delete(ctx, id, func(n int64) *endpointDoc {
		return &endpointDoc{ID: id, Version: n, Slot: d.Slot, CreatedAt: d.CreatedAt, UpdatedAt: s.now()}
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	c := s.colls(o)
	var sl slotDoc
	if err := c.slots.FindID(ctx, strconv.Itoa(d.Slot)).Decode(&sl); err == nil && sl.EndpointID == id {
		if _, err := c.slots.DeleteID(ctx, sl.ID); err != nil {
			return err
		}
	}
	return nil
}
