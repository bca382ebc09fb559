package contacts

import (
	"context"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/webhooks"
)

// Events is where contact changes hold their pushed events
// (webhooks.Service); nil pushes none.
type Events interface {
	Hold(ctx context.Context, o webhooks.Owner, changes []webhooks.Change) error
	Forget(ctx context.Context, o webhooks.Owner, subject string) error
}

// contactEvent is the pushed event of one contact change, "" for none: a
// change that only moves the contact's own bookkeeping (its updatedAt
// stays) is no event.
func contactEvent(x store.Held[contactDoc]) string {
	switch {
	case x.New == nil:
		return "contact.deleted"
	case x.Old == nil:
		return "contact.created"
	case x.New.Anonymized && !x.Old.Anonymized:
		return "contact.anonymized"
	case !x.New.UpdatedAt.Equal(x.Old.UpdatedAt):
		return "contact.updated"
	}
	return ""
}

// holdEvents is the contacts' store hold: each change's event is written
// before its claim. contact.deleted carries the id alone.
func (h *Handle) holdEvents(ctx context.Context, held []store.Held[contactDoc]) error {
	var chs []webhooks.Change
	for _, x := range held {
		typ := contactEvent(x)
		if typ == "" {
			continue
		}
		var data any
		if x.New == nil {
			data = map[string]string{"id": x.Old.ID}
		} else {
			p, err := h.open(x.New)
			if err != nil {
				return err
			}
			data = h.view(x.New, p)
		}
		chs = append(chs, webhooks.Change{
			Claim:  webhooks.Ref(x),
			Events: []webhooks.Pending{{Type: typ, CustomerID: h.db.ID(), Data: data, Subject: contactID(x)}},
		})
	}
	if len(chs) == 0 {
		return nil
	}
	return h.events.Hold(ctx, webhooks.Customer(h.db.ID()), chs)
}

func contactID(x store.Held[contactDoc]) string {
	if x.New != nil {
		return x.New.ID
	}
	return x.Old.ID
}

// forgetEvents takes back the pushed events of contact id not delivered
// yet (but those that carry only its id or its anonymized record).
func (h *Handle) forgetEvents(ctx context.Context, id string) error {
	if h.events == nil {
		return nil
	}
	return h.events.Forget(ctx, webhooks.Customer(h.db.ID()), id)
}
