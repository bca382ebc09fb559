package contacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

func (h *Handle) view(doc *contactDoc, p *personal) Contact {
	c := Contact{
		ID: doc.ID, Version: doc.Version, ExternalID: p.ExternalID, CrmID: p.CrmID, Email: p.Email, Phone: p.Phone,
		FirstName: p.FirstName, LastName: p.LastName, DateOfBirth: p.DateOfBirth, Gender: p.Gender, Country: doc.Country,
		Channels: p.Channels, CustomAttributes: p.CustomAttributes, Consents: p.Consents,
		Anonymized: doc.Anonymized, CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
	}
	for i := range c.Consents {
		c.Consents[i].UpdatedAt = c.Consents[i].UpdatedAt.UTC()
	}
	return c
}

// Get returns one contact.
func (h *Handle) Get(ctx context.Context, id string) (Contact, error) {
	doc, p, err := h.load(ctx, id)
	if err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}

// Lookup finds contacts by one exact value: kind is email, phone, crmId,
// externalId or channel. The value is normalised first; a value that cannot
// be normalised finds nothing.
func (h *Handle) Lookup(ctx context.Context, kind, value string) ([]Contact, error) {
	switch kind {
	case "channel":
		var idxs [][]byte
		if e, ok := NormalizeEmail(value); ok {
			idxs = append(idxs, h.index("channel", channelKey(Channel{"email", e})))
		}
		if ph, ok := switchboard.NormalizePhone(value, ""); ok {
			idxs = append(idxs, h.index("channel", channelKey(Channel{"sms", ph})), h.index("channel", channelKey(Channel{"whatsapp", ph})))
		}
		if len(idxs) == 0 {
			return nil, nil
		}
		docs, err := h.byChannel(ctx, idxs, 200)
		if err != nil {
			return nil, fmt.Errorf("lookup contacts: %w", err)
		}
		return h.views(ctx, docs)
	case KeyEmail, KeyPhone, KeyCrmID, KeyExternalID:
	default:
		return nil, fmt.Errorf("lookup kind %q", kind)
	}
	var v string
	var ok bool
	switch kind {
	case KeyEmail:
		v, ok = NormalizeEmail(value)
	case KeyPhone:
		v, ok = switchboard.NormalizePhone(value, "")
	default:
		v, ok = normalizeID(value)
	}
	if !ok {
		return nil, nil
	}
	doc, err := h.findBy(ctx, kind, v)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	doc, p, err := h.opened(ctx, doc)
	if err != nil {
		return nil, err
	}
	return []Contact{h.view(doc, p)}, nil
}

func (h *Handle) views(ctx context.Context, docs []contactDoc) ([]Contact, error) {
	out := make([]Contact, 0, len(docs))
	for i := range docs {
		if err := h.flush(ctx, docs[i].Pending); err != nil {
			return nil, err
		}
		p, err := h.open(&docs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, h.view(&docs[i], p))
	}
	return out, nil
}

// List returns a page of contacts, newest first, and the next cursor.
func (h *Handle) List(ctx context.Context, limit int, cursor string) ([]Contact, string, error) {
	// A creation a crash left between its claim and its document shows too.
	if err := h.docs.RollPending(ctx); err != nil {
		return nil, "", err
	}
	r := store.Range{Desc: true, Limit: limit + 1}
	if cursor != "" {
		last, err := switchboard.DecodeCursor(cursor, 1)
		if err != nil {
			return nil, "", err
		}
		r.After = last[0]
	}
	docs, err := store.All[contactDoc](ctx, h.contacts(), r)
	if err != nil {
		return nil, "", fmt.Errorf("list contacts: %w", err)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		next = switchboard.EncodeCursor(docs[limit-1].ID)
	}
	out, err := h.views(ctx, docs)
	return out, next, err
}

// Query selects contacts: an exact lookup when Lookups names one kind
// (email, phone, crmId, externalId or channel) with its value, else a page
// of the list (Limit already within 1..200, Cursor "" for the first).
type Query struct {
	Limit   int
	Cursor  string
	Lookups map[string]string
}

// Find answers a Query: a lookup (never more than one kind at a time: a
// ValidationError) finds at most the matching contacts and has no next
// page; the list is newest first with the cursor of the next page.
func (h *Handle) Find(ctx context.Context, q Query) ([]Contact, string, error) {
	switch len(q.Lookups) {
	case 0:
		return h.List(ctx, q.Limit, q.Cursor)
	case 1:
		for kind, value := range q.Lookups {
			list, err := h.Lookup(ctx, kind, value)
			return list, "", err
		}
	}
	var verr switchboard.ValidationError
	for kind := range q.Lookups {
		verr.Add(kind, "only one lookup parameter at a time")
	}
	slices.SortFunc(verr.Fields, func(a, b switchboard.FieldError) int { return strings.Compare(a.Field, b.Field) })
	return nil, "", &verr
}
