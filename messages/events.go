package messages

import (
	"context"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/webhooks"
)

// Events is where the messaging domain's changes hold their pushed events
// (webhooks.Service); nil pushes nothing.
type Events interface {
	Hold(ctx context.Context, o webhooks.Owner, changes []webhooks.Change) error
	Forget(ctx context.Context, o webhooks.Owner, subject string) error
}

// holdMessageEvents is the messages' store hold: an inbound message is
// message.received, every change of an outbound message's status
// message.status_changed, written before the change's claim.
func (h *Handle) holdMessageEvents(ctx context.Context, held []store.Held[messageDoc]) error {
	ev := h.s.cfg.Events
	if ev == nil {
		return nil
	}
	var chs []webhooks.Change
	for _, x := range held {
		typ := ""
		switch {
		case x.New == nil:
			continue
		case x.Old == nil && x.New.Direction == Inbound:
			typ = "message.received"
		case x.Old != nil && x.New.Direction == Outbound && x.Old.Status != x.New.Status:
			typ = "message.status_changed"
		default:
			continue
		}
		m, err := h.view(x.New)
		if err != nil {
			return err
		}
		chs = append(chs, webhooks.Change{
			Claim:  webhooks.Ref(x),
			Events: []webhooks.Pending{{Type: typ, CustomerID: h.customerID, Data: m, Subject: m.ID}},
		})
	}
	if len(chs) == 0 {
		return nil
	}
	return ev.Hold(ctx, webhooks.Customer(h.customerID), chs)
}

// optOutsFor is the opt-outs' store with the hold of phone e164's changes:
// each change of its opted-out state is opt_out.changed.
func (h *Handle) optOutsFor(e164 string) *store.Versioned[optOutDoc, struct{}] {
	v := *h.optOuts
	ev := h.s.cfg.Events
	if ev == nil {
		return &v
	}
	v.Hold = func(ctx context.Context, held []store.Held[optOutDoc]) error {
		var chs []webhooks.Change
		for _, x := range held {
			if x.New == nil || (x.Old != nil && x.Old.OptedOut == x.New.OptedOut) {
				continue
			}
			src, err := h.cipher.Open(optOutField(x.New.ID), x.New.Source)
			if err != nil {
				return err
			}
			s, at := string(src), x.New.UpdatedAt.UTC()
			chs = append(chs, webhooks.Change{
				Claim: webhooks.Ref(x),
				Events: []webhooks.Pending{{Type: "opt_out.changed", CustomerID: h.customerID,
					Data: OptOut{Phone: e164, OptedOut: x.New.OptedOut, Source: &s, UpdatedAt: &at}}},
			})
		}
		if len(chs) == 0 {
			return nil
		}
		return ev.Hold(ctx, webhooks.Customer(h.customerID), chs)
	}
	return &v
}

// holdNumberEvent holds a partner's phone_number event before the number's
// document is inserted (purchased) or deleted (released): the document's
// presence, or its absence, is the change.
func (h *Handle) holdNumberEvent(ctx context.Context, partnerID, typ, id, e164 string) error {
	ev := h.s.cfg.Events
	if ev == nil {
		return nil
	}
	return ev.Hold(ctx, webhooks.Partner(partnerID), []webhooks.Change{{
		Claim: webhooks.ClaimRef{Coll: "phone_numbers", ClaimID: id, Gone: typ == "phone_number.released"},
		// The number is the customer's own, not a person's.
		Events: []webhooks.Pending{{Type: typ, CustomerID: h.customerID, Data: map[string]string{"id": id, "phoneNumber": e164}}},
	}})
}

// forgetEvents takes back the pushed events of message id not delivered
// yet: their bodies hold what a redaction erases.
func (h *Handle) forgetEvents(ctx context.Context, id string) error {
	if h.s.cfg.Events == nil {
		return nil
	}
	return h.s.cfg.Events.Forget(ctx, webhooks.Customer(h.customerID), id)
}
