package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// personal is everything about a person: stored only sealed.
type personal struct {
	ExternalID       *string     `json:"externalId,omitempty"`
	CrmID            *string     `json:"crmId,omitempty"`
	Email            *string     `json:"email,omitempty"`
	Phone            *string     `json:"phone,omitempty"`
	FirstName        *string     `json:"firstName,omitempty"`
	LastName         *string     `json:"lastName,omitempty"`
	DateOfBirth      *string     `json:"dateOfBirth,omitempty"`
	Gender           *string     `json:"gender,omitempty"`
	Channels         []Channel   `json:"channels,omitempty"`
	CustomAttributes []Attribute `json:"customAttributes,omitempty"`
	Consents         []Consent   `json:"consents,omitempty"`
}

func (p *personal) key(kind string) *string {
	switch kind {
	case KeyEmail:
		return p.Email
	case KeyPhone:
		return p.Phone
	case KeyCrmID:
		return p.CrmID
	case KeyExternalID:
		return p.ExternalID
	}
	return nil
}

type contactDoc struct {
	ID         string            `bson:"_id"`
	Version    int64             `bson:"version"`
	Sealed     []byte            `bson:"sealed"`
	Country    *string           `bson:"country,omitempty"`
	Anonymized bool              `bson:"anonymized"`
	CreatedAt  time.Time         `bson:"createdAt"`
	UpdatedAt  time.Time         `bson:"updatedAt"`
	Idx        map[string][]byte `bson:"idx,omitempty"`
	ChannelIdx [][]byte          `bson:"channelIdx,omitempty"`
	// Pending holds the timeline items of the latest change until they are
	// copied to the timeline collection (every load copies them first).
	Pending []timelineDoc `bson:"pending,omitempty"`
}

type timelineDoc struct {
	ID        string    `bson:"_id"`
	ContactID string    `bson:"contactId"`
	Type      string    `bson:"type"`
	At        time.Time `bson:"at"`
	Sealed    []byte    `bson:"sealed"`
}

type timelinePayload struct {
	EventType   *string        `json:"eventType,omitempty"`
	Message     *string        `json:"message,omitempty"`
	SourceURL   *string        `json:"sourceUrl,omitempty"`
	InitiatedBy *string        `json:"initiatedBy,omitempty"`
	MessageID   *string        `json:"messageId,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
}

func personalField(id string) crypto.Field {
	return crypto.Field{Collection: "contacts", DocumentID: id, Name: "personal"}
}

func timelineField(id string) crypto.Field {
	return crypto.Field{Collection: "timeline", DocumentID: id, Name: "payload"}
}

// load reads a contact and first copies its pending timeline items.
func (h *Handle) load(ctx context.Context, id string) (*contactDoc, *personal, error) {
	doc, err := h.docs.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load contact: %w", err)
	}
	return h.opened(ctx, doc)
}

// opened copies a loaded contact's pending timeline items and opens it.
func (h *Handle) opened(ctx context.Context, doc *contactDoc) (*contactDoc, *personal, error) {
	if err := h.flush(ctx, doc.Pending); err != nil {
		return nil, nil, err
	}
	p, err := h.open(doc)
	if err != nil {
		return nil, nil, err
	}
	return doc, p, nil
}

func (h *Handle) open(doc *contactDoc) (*personal, error) {
	p, err := crypto.OpenJSON[personal](h.cipher, personalField(doc.ID), doc.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open contact: %w", err)
	}
	return p, nil
}

// build makes the stored form of p as the next version of old (nil: a new
// contact with id): sealed, with its blind indexes and pending items.
func (h *Handle) build(id string, old *contactDoc, p *personal, country *string, anonymized bool, items []timelineDoc) (*contactDoc, error) {
	now := h.nowMs()
	doc := &contactDoc{ID: id, Version: 1, Country: country, Anonymized: anonymized, CreatedAt: now, UpdatedAt: now, Idx: map[string][]byte{}, Pending: items}
	if old != nil {
		doc.Version, doc.CreatedAt = old.Version+1, old.CreatedAt
	}
	for _, k := range lookupKinds {
		if v := p.key(k); v != nil {
			doc.Idx[k] = h.index(k, *v)
		}
	}
	seen := map[string]bool{}
	for _, c := range p.Channels {
		if k := channelKey(c); !seen[k] {
			seen[k] = true
			doc.ChannelIdx = append(doc.ChannelIdx, h.index("channel", k))
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if doc.Sealed, err = h.cipher.Seal(personalField(id), b); err != nil {
		return nil, err
	}
	return doc, nil
}

// merge applies an input to a stored person (nil for a new one) and tells
// which fields changed and which consents.
func merge(old *personal, in Input, now time.Time) (*personal, []string, []Consent) {
	p := &personal{}
	if old != nil {
		cp := *old
		p = &cp
	}
	var changed []string
	set := func(dst **string, f Field[string], name string) {
		if !f.Set {
			return
		}
		var v *string
		if !f.Null {
			s := f.Value
			v = &s
		}
		if (*dst == nil) != (v == nil) || (v != nil && **dst != *v) {
			changed = append(changed, name)
		}
		*dst = v
	}
	set(&p.ExternalID, in.ExternalID, "externalId")
	set(&p.CrmID, in.CrmID, "crmId")
	set(&p.Email, in.Email, "email")
	set(&p.Phone, in.Phone, "phone")
	set(&p.FirstName, in.FirstName, "firstName")
	set(&p.LastName, in.LastName, "lastName")
	set(&p.DateOfBirth, in.DateOfBirth, "dateOfBirth")
	set(&p.Gender, in.Gender, "gender")
	if in.Channels.Set {
		if !slices.Equal(p.Channels, in.Channels.Value) {
			changed = append(changed, "channels")
		}
		p.Channels = slices.Clone(in.Channels.Value)
	}
	if in.CustomAttributes.Set {
		if !slices.Equal(p.CustomAttributes, in.CustomAttributes.Value) {
			changed = append(changed, "customAttributes")
		}
		p.CustomAttributes = slices.Clone(in.CustomAttributes.Value)
	}
	var consentChanges []Consent
	if in.Consents.Set {
		cons := slices.Clone(p.Consents)
		if in.Consents.Null {
			cons = nil
			changed = append(changed, "consents")
		}
		for _, c := range in.Consents.Value {
			source := c.Source
			if source == "" {
				source = "api"
			}
			i := slices.IndexFunc(cons, func(x Consent) bool { return x.Topic == c.Topic })
			if i >= 0 && cons[i].Value == c.Value && cons[i].Source == source {
				continue
			}
			nc := Consent{Topic: c.Topic, Value: c.Value, UpdatedAt: now, Source: source}
			if i >= 0 {
				cons[i] = nc
			} else {
				cons = append(cons, nc)
			}
			consentChanges = append(consentChanges, nc)
		}
		p.Consents = cons
	}
	return p, changed, consentChanges
}

func countryOf(old *contactDoc, in Input) *string {
	if in.Country.Set {
		if in.Country.Null {
			return nil
		}
		c := in.Country.Value
		return &c
	}
	if old != nil {
		return old.Country
	}
	return nil
}
