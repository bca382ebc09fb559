package tenants

import (
	"context"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/webhooks"
)

// Events is where lifecycle changes hold their pushed events to the
// partner (webhooks.Service); nil pushes none.
type Events interface {
	Hold(ctx context.Context, o webhooks.Owner, changes []webhooks.Change) error
}

// lifecycleEvent is the partner event of a customer change ("" for none).
func lifecycleEvent(old, next *customerDoc) string {
	switch {
	case next == nil:
		return ""
	case old == nil:
		return "customer.registered"
	case old.Status != next.Status:
		switch next.Status {
		case StatusActive:
			return "customer.activated"
		case StatusDeactivated:
			return "customer.deactivated"
		case StatusTerminated:
			return "customer.terminated"
		case StatusShredded:
			return "customer.shredded"
		}
	case !sameRetention(old.Retention, next.Retention):
		return "customer.retention_changed"
	}
	return ""
}

func sameRetention(a, b *retentionDoc) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Strategy == b.Strategy && switchboard.Deref(a.Period) == switchboard.Deref(b.Period) &&
		(a.ShredAt == nil) == (b.ShredAt == nil) && (a.ShredAt == nil || a.ShredAt.Equal(*b.ShredAt))
}

// partnerView is a customer as a partner event carries it: no personal or
// business data.
func partnerView(d *customerDoc) map[string]any {
	v := map[string]any{"id": d.ID, "status": d.Status, "version": d.Version, "space": d.Space, "retention": nil, "shredAt": nil}
	if r := d.Retention; r != nil {
		v["retention"] = map[string]any{"strategy": r.Strategy, "period": r.Period}
		if r.ShredAt != nil {
			v["shredAt"] = switchboard.FormatTime(*r.ShredAt)
		}
	}
	return v
}

// holdEvents is the customers' store hold: each lifecycle step's partner
// event is written before its claim (the audit event's).
func (s *Service) holdEvents(ctx context.Context, held []store.Held[customerDoc]) error {
	for _, x := range held {
		typ := lifecycleEvent(x.Old, x.New)
		if typ == "" {
			continue
		}
		err := s.cfg.Events.Hold(ctx, webhooks.Partner(x.New.PartnerID), []webhooks.Change{{
			Claim:  control(webhooks.Ref(x)),
			Events: []webhooks.Pending{{Type: typ, CustomerID: x.New.ID, Data: partnerView(x.New)}},
		}})
		if err != nil {
			return err
		}
	}
	return nil
}

// control marks a ref as the control database's (customers are).
func control(r webhooks.ClaimRef) webhooks.ClaimRef {
	r.Control = true
	return r
}
