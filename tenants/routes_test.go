package tenants_test

import (
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/tenants"
)

// Activation routes the customer's sub-account; RepairSubaccountRoutes
// gives every ACTIVE or DEACTIVATED customer whose route is missing (one
// activated before routes were written at activation) its route, once.
func TestSubaccountRoutes(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	active := h.active(t, "route-active")
	if got, err := h.svc.SubaccountCustomer(ctx, active.Twilio.AccountSID); err != nil || got != active.ID {
		t.Fatalf("route after activation: %q, %v; want %s", got, err, active.ID)
	}
	deactivated := h.active(t, "route-deactivated")
	if _, err := h.svc.Deactivate(ctx, h.partner, deactivated.ID, tenants.AnyVersion); err != nil {
		t.Fatal(err)
	}
	h.register(t, "route-registered")
	terminated := h.terminated(t, "route-terminated", 1)

	// Older data: no routes at all.
	if _, err := h.db.Control.Collection("subaccount_routes").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.SubaccountCustomer(ctx, active.Twilio.AccountSID); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("route after deleting routes: %v, want ErrNotFound", err)
	}
	n, err := h.svc.RepairSubaccountRoutes(ctx)
	if err != nil || n != 2 {
		t.Fatalf("repair: %d, %v; want 2 routes written", n, err)
	}
	for _, c := range []tenants.Customer{active, deactivated} {
		if got, err := h.svc.SubaccountCustomer(ctx, c.Twilio.AccountSID); err != nil || got != c.ID {
			t.Fatalf("route of %s after repair: %q, %v", c.ID, got, err)
		}
	}
	if _, err := h.svc.SubaccountCustomer(ctx, terminated.Twilio.AccountSID); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("a terminated customer was routed: %v", err)
	}
	if n, err := h.svc.RepairSubaccountRoutes(ctx); err != nil || n != 0 {
		t.Fatalf("repair again: %d, %v; want nothing to write", n, err)
	}
	// A reactivation writes a missing route too.
	if _, err := h.db.Control.Collection("subaccount_routes").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Activate(ctx, h.partner, deactivated.ID, tenants.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if got, err := h.svc.SubaccountCustomer(ctx, deactivated.Twilio.AccountSID); err != nil || got != deactivated.ID {
		t.Fatalf("route after reactivation: %q, %v", got, err)
	}
}
