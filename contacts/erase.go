package contacts

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard/switchboard/store"
)

// Delete removes a contact, its lookups and its timeline for good.
func (h *Handle) Delete(ctx context.Context, id string) error {
	doc, _, err := h.load(ctx, id)
	if errors.Is(err, ErrNotFound) {
		// Gone; a deletion that stopped before its last step finishes it.
		if ferr := h.forgetEvents(ctx, id); ferr != nil {
			return ferr
		}
	}
	if err != nil {
		return err
	}
	// The document goes first: a crash before the entries are released
	// leaves them naming a contact that is gone, which frees them.
	// Every earlier version's claim keeps only the id afterwards.
	if err := h.docs.Delete(ctx, id, func(n int64) *contactDoc { return &contactDoc{ID: id, Version: n} }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete contact: %w", err)
	}
	if err := h.release(ctx, id, doc.Idx); err != nil {
		return err
	}
	if _, err := h.timeline().DeleteRange(ctx, timelineOf(id)); err != nil {
		return fmt.Errorf("delete timeline: %w", err)
	}
	return h.forgetEvents(ctx, id)
}

// Anonymize keeps a contact as a record without a person: names and
// attribute values become XXX, the email a placeholder, identifiers, phone,
// birth date, gender and channels go; country and consents stay; the texts
// of its timeline are erased.
func (h *Handle) Anonymize(ctx context.Context, id string) (Contact, error) {
	doc, p, err := h.change(ctx, id, store.AnyVersion, func(old *contactDoc, oldP *personal) (*personal, *string, bool, []timelineDoc, error) {
		xxx := func(s *string) *string {
			if s == nil {
				return nil
			}
			v := "XXX"
			return &v
		}
		email := "anonymized-" + id + "@example.invalid"
		p := &personal{FirstName: xxx(oldP.FirstName), LastName: xxx(oldP.LastName), Consents: oldP.Consents}
		if oldP.Email != nil {
			p.Email = &email
		}
		for _, a := range oldP.CustomAttributes {
			p.CustomAttributes = append(p.CustomAttributes, Attribute{Name: a.Name, Value: "XXX"})
		}
		items, err := h.items(id, ItemAnonymized, nil, nil, h.nowMs())
		return p, old.Country, true, items, err
	})
	if errors.Is(err, errConflict) {
		return Contact{}, ErrUniqueConflict
	}
	if err != nil {
		return Contact{}, err
	}
	// The earlier versions' claims still hold the person: they keep only
	// the anonymized state now (claims stay: the version ledger needs them).
	if err := h.docs.RedactHistory(ctx, id, doc.Version, func(n int64) *contactDoc {
		d := *doc
		d.Version, d.Pending = n, nil
		return &d
	}); err != nil {
		return Contact{}, err
	}
	if err := h.scrubTimeline(ctx, id); err != nil {
		return Contact{}, err
	}
	if err := h.forgetEvents(ctx, id); err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}

// MessageEraser redacts every message of a person, here and at Twilio:
// those linked to contact contactID and every other one to or from addrs
// (messages.Handle.RedactParty; contacts cannot import messaging, which
// builds on contacts).
type MessageEraser func(ctx context.Context, contactID string, addrs []string) error

// Erase deletes contact id (or, with anonymize, anonymizes it and answers
// the anonymized contact), and has redact (nil: no messaging) erase its
// messages: those linked to it and every one to or from its phone and sms
// channel addresses. The messages go first, so a crash in between leaves
// the contact to be erased again by a retry, with the addresses still
// known; and again after, for a message that was being stored, linked to
// the contact, meanwhile (it is either found then, or it finds the contact
// gone and redacts itself).
func (h *Handle) Erase(ctx context.Context, id string, anonymize bool, redact MessageEraser) (Contact, error) {
	c, err := h.Get(ctx, id)
	if err != nil {
		return Contact{}, err
	}
	var addrs []string
	if c.Phone != nil {
		addrs = append(addrs, *c.Phone)
	}
	for _, ch := range c.Channels {
		if ch.Type == "sms" && !slices.Contains(addrs, ch.Address) {
			addrs = append(addrs, ch.Address)
		}
	}
	if redact == nil {
		redact = func(context.Context, string, []string) error { return nil }
	}
	if err := redact(ctx, id, addrs); err != nil {
		return Contact{}, err
	}
	var out Contact
	if anonymize {
		out, err = h.Anonymize(ctx, id)
	} else {
		err = h.Delete(ctx, id)
	}
	if err != nil {
		return Contact{}, err
	}
	return out, redact(ctx, id, addrs)
}
