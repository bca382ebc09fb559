package tenants_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"

	"github.com/switchboard/switchboard"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const (
	masterSID   = "AC00000000000000000000000000000001"
	masterToken = "0123456789abcdef0123456789abcdef"
)

type harness struct {
	svc     *tenants.Service
	db      *store.DB
	keyring *crypto.Keyring
	master  *crypto.MasterKey
	twilio  *twiliotest.Server
	client  tenants.Twilio
	clock   *fakeclock.Clock
	partner tenants.Partner
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	db := storetest.MustOpen(t)
	master, _, err := crypto.LoadOrCreateDevMasterKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyring := crypto.NewKeyring(db.Keys.Collection("customer_keys"), master)
	t.Cleanup(keyring.Close)
	srv := twiliotest.NewServer(t, masterSID, masterToken)
	client, err := twilio.NewClient(twilio.Config{AccountSID: masterSID, AuthToken: masterToken, APIURL: srv.URL(), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC))
	svc := tenants.NewService(tenants.Config{
		Control: db.Control,
		Keyring: keyring,
		Twilio:  client,
		Data:    db,
		Logger:  storetest.Logger(),
		Now:     clk.Now,
	})
	p, _, err := svc.CreatePartner(t.Context(), "Acme Resellers")
	if err != nil {
		t.Fatal(err)
	}
	return &harness{svc: svc, db: db, keyring: keyring, master: master, twilio: srv, client: client, clock: clk, partner: p}
}

var industry = tenants.Industries()[0].ID

func (h *harness) register(t testing.TB, space string) tenants.Customer {
	t.Helper()
	c, err := h.svc.Register(t.Context(), h.partner, tenants.RegisterInput{Space: space, IndustryID: industry, Label: "Label of " + space})
	if err != nil {
		t.Fatalf("register %s: %v", space, err)
	}
	return c
}

func (h *harness) active(t testing.TB, space string) tenants.Customer {
	t.Helper()
	c := h.register(t, space)
	c, err := h.svc.Activate(t.Context(), h.partner, c.ID, tenants.AnyVersion)
	if err != nil {
		t.Fatalf("activate %s: %v", space, err)
	}
	return c
}

func str(s string) *string { return &s }

func contactInput() tenants.ContactInfoInput {
	return tenants.ContactInfoInput{
		BusinessName: str("Acme Bakery"), AddressLine1: str("1 Main St"),
		PostalCode: str("M5V 2T6"), Province: str("ON"), Country: str("CA"), PhoneNumber: str("+14165550100"),
	}
}

func wantStatus(t *testing.T, c tenants.Customer, status tenants.Status, version int64) {
	t.Helper()
	if c.Status != status || c.Version != version {
		t.Fatalf("customer is %s v%d, want %s v%d", c.Status, c.Version, status, version)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.register(t, "acme")
	wantStatus(t, c, tenants.StatusRegistered, 1)
	if c.Label == nil || *c.Label != "Label of acme" || c.PartnerID != h.partner.ID || c.Twilio != nil {
		t.Fatalf("registered customer %+v", c)
	}

	c, err := h.svc.Activate(ctx, h.partner, c.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusActive, 2)
	if c.Twilio == nil || c.Twilio.Status != tenants.SubaccountActive || c.ActivatedAt == nil {
		t.Fatalf("activated customer %+v", c)
	}
	accounts := h.twilio.Accounts()
	if len(accounts) != 1 || accounts[0].SID != c.Twilio.AccountSID || accounts[0].Status != "active" {
		t.Fatalf("twilio accounts %+v", accounts)
	}

	// Activating an ACTIVE customer is a no-op.
	c, err = h.svc.Activate(ctx, h.partner, c.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusActive, 2)

	c, err = h.svc.UpdateContactInfo(ctx, h.partner, c.ID, 2, contactInput())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusActive, 3)
	if ci := c.ContactInfo; ci == nil || ci.BusinessName != "Acme Bakery" || ci.Country != "CA" || ci.SecondaryName != nil {
		t.Fatalf("contact info %+v", c.ContactInfo)
	}

	c, err = h.svc.Deactivate(ctx, h.partner, c.ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusDeactivated, 4)
	if h.twilio.Accounts()[0].Status != "suspended" || c.Twilio.Status != tenants.SubaccountSuspended {
		t.Fatalf("after deactivate: twilio %+v, customer %+v", h.twilio.Accounts(), c.Twilio)
	}
	c, err = h.svc.Deactivate(ctx, h.partner, c.ID, tenants.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusDeactivated, 4)

	c, err = h.svc.Activate(ctx, h.partner, c.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusActive, 5)
	if h.twilio.Accounts()[0].Status != "active" || h.twilio.CreateCount() != 1 {
		t.Fatalf("re-activation: twilio %+v, %d creates", h.twilio.Accounts(), h.twilio.CreateCount())
	}

	period := 1
	c, err = h.svc.Terminate(ctx, h.partner, c.ID, 5, tenants.RetentionInput{Strategy: "TEMPORARY", Period: &period})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusTerminated, 6)
	wantShred := time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)
	if c.Retention == nil || c.Retention.ShredAt == nil || !c.Retention.ShredAt.Equal(wantShred) || *c.Retention.Period != 1 {
		t.Fatalf("retention %+v", c.Retention)
	}
	if h.twilio.Accounts()[0].Status != "closed" || c.Twilio.Status != tenants.SubaccountClosed {
		t.Fatalf("terminate did not close the sub-account: %+v", h.twilio.Accounts())
	}
	// Still readable during retention.
	got, err := h.svc.Customer(ctx, h.partner, c.ID)
	if err != nil || got.Label == nil || got.ContactInfo == nil {
		t.Fatalf("terminated customer during retention: %+v, %v", got, err)
	}

	events, next, err := h.svc.Events(ctx, h.partner, c.ID, tenants.PageQuery{Limit: 50})
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	wantTypes := []string{tenants.EventRegistered, tenants.EventActivated, tenants.EventContactInfoUpdated,
		tenants.EventDeactivated, tenants.EventActivated, tenants.EventTerminated}
	if len(events) != len(wantTypes) {
		t.Fatalf("%d events, want %d: %+v", len(events), len(wantTypes), events)
	}
	for i, e := range events {
		if e.Type != wantTypes[i] || e.Version != int64(i+1) {
			t.Errorf("event %d: %s v%d, want %s v%d", i, e.Type, e.Version, wantTypes[i], i+1)
		}
	}
	// Paging through the events, two at a time.
	var seen int
	cursor := ""
	for {
		page, nextCur, err := h.svc.Events(ctx, h.partner, c.ID, tenants.PageQuery{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen++
			if e.Version != int64(seen) {
				t.Fatalf("paged event %d has version %d", seen, e.Version)
			}
		}
		if nextCur == "" {
			break
		}
		cursor = nextCur
	}
	if seen != 6 {
		t.Fatalf("paged through %d events, want 6", seen)
	}
}

func TestInvalidTransitions(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	reg := h.register(t, "reg")
	if _, err := h.svc.Deactivate(ctx, h.partner, reg.ID, tenants.AnyVersion); !errors.Is(err, tenants.ErrInvalidTransition) {
		t.Errorf("deactivate REGISTERED: %v", err)
	}
	if _, err := h.svc.UpdateContactInfo(ctx, h.partner, reg.ID, tenants.AnyVersion, contactInput()); !errors.Is(err, tenants.ErrInvalidTransition) {
		t.Errorf("contact info of REGISTERED: %v", err)
	}
	term, err := h.svc.Terminate(ctx, h.partner, reg.ID, 1, tenants.RetentionInput{Strategy: "INDEFINITE"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, term, tenants.StatusTerminated, 2)
	if term.Retention.ShredAt != nil || term.Retention.Period != nil {
		t.Fatalf("indefinite retention %+v", term.Retention)
	}
	for name, f := range map[string]func() error{
		"activate":   func() error { _, err := h.svc.Activate(ctx, h.partner, reg.ID, tenants.AnyVersion); return err },
		"deactivate": func() error { _, err := h.svc.Deactivate(ctx, h.partner, reg.ID, tenants.AnyVersion); return err },
		"contact info": func() error {
			_, err := h.svc.UpdateContactInfo(ctx, h.partner, reg.ID, tenants.AnyVersion, contactInput())
			return err
		},
		"terminate": func() error {
			_, err := h.svc.Terminate(ctx, h.partner, reg.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"})
			return err
		},
	} {
		if err := f(); !errors.Is(err, tenants.ErrInvalidTransition) {
			t.Errorf("%s on TERMINATED: %v, want invalid transition", name, err)
		}
	}
	got, err := h.svc.Customer(ctx, h.partner, reg.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, tenants.StatusTerminated, 2)
}

func TestVersionConflictChangesNothing(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.register(t, "stale")
	_, err := h.svc.Activate(ctx, h.partner, c.ID, 7)
	var vc *switchboard.VersionConflictError
	if !errors.As(err, &vc) || vc.Current != 1 || !errors.Is(err, switchboard.ErrVersionConflict) {
		t.Fatalf("stale activate: %v", err)
	}
	if h.twilio.CreateCount() != 0 {
		t.Fatal("a stale request reached Twilio")
	}
	got, _ := h.svc.Customer(ctx, h.partner, c.ID)
	wantStatus(t, got, tenants.StatusRegistered, 1)
}

func TestTwilioFailuresChangeNothing(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	for _, status := range []int{500, 503, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			c := h.register(t, fmt.Sprintf("fail-%d", status))
			h.twilio.FailNext(1, status)
			if _, err := h.svc.Activate(ctx, h.partner, c.ID, 1); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
				t.Fatalf("activate with Twilio %d: %v", status, err)
			}
			got, _ := h.svc.Customer(ctx, h.partner, c.ID)
			wantStatus(t, got, tenants.StatusRegistered, 1)
			if got, err := h.svc.Activate(ctx, h.partner, c.ID, 1); err != nil {
				t.Fatalf("retry: %v", err)
			} else {
				wantStatus(t, got, tenants.StatusActive, 2)
			}
			// A failing suspend leaves the customer ACTIVE.
			h.twilio.FailNext(1, status)
			if _, err := h.svc.Deactivate(ctx, h.partner, c.ID, 2); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
				t.Fatalf("deactivate with Twilio %d: %v", status, err)
			}
			got, _ = h.svc.Customer(ctx, h.partner, c.ID)
			wantStatus(t, got, tenants.StatusActive, 2)
			// A failing close leaves the customer ACTIVE too.
			h.twilio.FailNext(1, status)
			if _, err := h.svc.Terminate(ctx, h.partner, c.ID, 2, tenants.RetentionInput{Strategy: "NO_RETENTION"}); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
				t.Fatalf("terminate with Twilio %d: %v", status, err)
			}
			got, _ = h.svc.Customer(ctx, h.partner, c.ID)
			wantStatus(t, got, tenants.StatusActive, 2)
		})
	}
}

func TestLostCreateAnswerReusesTheSubaccount(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.register(t, "lost")
	h.twilio.LoseNextCreateAnswer()
	if _, err := h.svc.Activate(ctx, h.partner, c.ID, 1); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("activate with a lost answer: %v", err)
	}
	got, _ := h.svc.Customer(ctx, h.partner, c.ID)
	wantStatus(t, got, tenants.StatusRegistered, 1)
	got, err := h.svc.Activate(ctx, h.partner, c.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, tenants.StatusActive, 2)
	if n := h.twilio.CreateCount(); n != 1 {
		t.Fatalf("%d sub-accounts created, want 1 (reused)", n)
	}
	if got.Twilio.AccountSID != h.twilio.Accounts()[0].SID {
		t.Fatal("customer does not hold the sub-account that was created")
	}
}

func TestSubaccountLimit(t *testing.T) {
	h := newHarness(t)
	h.twilio.SetSubaccountLimit(0)
	c := h.register(t, "limited")
	if _, err := h.svc.Activate(t.Context(), h.partner, c.ID, 1); !errors.Is(err, tenants.ErrTwilioSubaccountLimit) {
		t.Fatalf("activate past the limit: %v", err)
	}
	got, _ := h.svc.Customer(t.Context(), h.partner, c.ID)
	wantStatus(t, got, tenants.StatusRegistered, 1)
}

func TestOtherPartnersCustomersAreNotFound(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.active(t, "mine")
	other, _, err := h.svc.CreatePartner(ctx, "Other")
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]func() error{
		"get":        func() error { _, err := h.svc.Customer(ctx, other, c.ID); return err },
		"activate":   func() error { _, err := h.svc.Activate(ctx, other, c.ID, tenants.AnyVersion); return err },
		"deactivate": func() error { _, err := h.svc.Deactivate(ctx, other, c.ID, tenants.AnyVersion); return err },
		"contact": func() error {
			_, err := h.svc.UpdateContactInfo(ctx, other, c.ID, tenants.AnyVersion, contactInput())
			return err
		},
		"terminate": func() error {
			_, err := h.svc.Terminate(ctx, other, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "NO_RETENTION"})
			return err
		},
		"events": func() error { _, _, err := h.svc.Events(ctx, other, c.ID, tenants.PageQuery{Limit: 10}); return err },
	}
	for name, f := range checks {
		if err := f(); !errors.Is(err, tenants.ErrNotFound) {
			t.Errorf("%s by another partner: %v, want not found", name, err)
		}
	}
	list, _, err := h.svc.Customers(ctx, other, tenants.ListQuery{Limit: 50})
	if err != nil || len(list) != 0 {
		t.Fatalf("other partner lists %d customers (%v)", len(list), err)
	}
	got, _ := h.svc.Customer(ctx, h.partner, c.ID)
	wantStatus(t, got, tenants.StatusActive, 2)
}

func TestSpaceTakenForever(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.register(t, "taken")
	if _, err := h.svc.Register(ctx, h.partner, tenants.RegisterInput{Space: "taken", IndustryID: industry, Label: "x"}); !errors.Is(err, tenants.ErrSpaceTaken) {
		t.Fatalf("second registration: %v", err)
	}
	if _, err := h.svc.Terminate(ctx, h.partner, c.ID, 1, tenants.RetentionInput{Strategy: "NO_RETENTION"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Register(ctx, h.partner, tenants.RegisterInput{Space: "taken", IndustryID: industry, Label: "x"}); !errors.Is(err, tenants.ErrSpaceTaken) {
		t.Fatalf("registration after shredding: %v", err)
	}
}

func TestRegisterValidation(t *testing.T) {
	h := newHarness(t)
	other := "someone-else"
	tests := []struct {
		in    tenants.RegisterInput
		field string
	}{
		{tenants.RegisterInput{Space: "A", IndustryID: industry, Label: "x"}, "space"},
		{tenants.RegisterInput{Space: "-abc", IndustryID: industry, Label: "x"}, "space"},
		{tenants.RegisterInput{Space: "ok-space", IndustryID: "5f0c0e8e-0000-5000-8000-000000000000", Label: "x"}, "industryId"},
		{tenants.RegisterInput{Space: "ok-space", IndustryID: industry, Label: "   "}, "label"},
		{tenants.RegisterInput{Space: "ok-space", IndustryID: industry, Label: string(make([]rune, 201))}, "label"},
		{tenants.RegisterInput{Space: "ok-space", IndustryID: industry, Label: "x", PartnerID: &other}, "partnerId"},
	}
	for _, tt := range tests {
		_, err := h.svc.Register(t.Context(), h.partner, tt.in)
		var verr *switchboard.ValidationError
		if !errors.As(err, &verr) || verr.Fields[0].Field != tt.field {
			t.Errorf("register %+v: %v, want a validation error on %s", tt.in, err, tt.field)
		}
	}
	list, _, _ := h.svc.Customers(t.Context(), h.partner, tenants.ListQuery{Limit: 50})
	if len(list) != 0 {
		t.Fatalf("invalid registrations stored %d customers", len(list))
	}
}

func TestListNewestFirstWithCursorAndFilter(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		ids = append(ids, h.register(t, fmt.Sprintf("list-%d", i)).ID)
	}
	if _, err := h.svc.Activate(ctx, h.partner, ids[1], 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for {
		page, next, err := h.svc.Customers(ctx, h.partner, tenants.ListQuery{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{ids[4], ids[3], ids[2], ids[1], ids[0]}) {
		t.Fatalf("order %v", got)
	}
	active, _, err := h.svc.Customers(ctx, h.partner, tenants.ListQuery{Status: tenants.StatusActive, Limit: 50})
	if err != nil || len(active) != 1 || active[0].ID != ids[1] {
		t.Fatalf("status filter: %v %v", active, err)
	}
	if _, _, err := h.svc.Customers(ctx, h.partner, tenants.ListQuery{Limit: 2, Cursor: "!!"}); !errorsAsValidation(err, "cursor") {
		t.Fatalf("bad cursor: %v", err)
	}
}

func errorsAsValidation(err error, field string) bool {
	var verr *switchboard.ValidationError
	return errors.As(err, &verr) && len(verr.Fields) > 0 && verr.Fields[0].Field == field
}

// assertShredded checks the crypto-shredding promise for one customer.
func (h *harness) assertShredded(t *testing.T, id string, version int64) {
	t.Helper()
	ctx := t.Context()
	c, err := h.svc.Customer(ctx, h.partner, id)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, tenants.StatusShredded, version)
	if c.Label != nil || c.ContactInfo != nil || c.ShreddedAt == nil {
		t.Fatalf("shredded customer still shows data: %+v", c)
	}
	if _, err := h.svc.Cipher(ctx, id); !errors.Is(err, tenants.ErrDataShredded) {
		t.Fatalf("service cipher after shredding: %v", err)
	}
	if _, err := h.keyring.Cipher(ctx, id); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("keyring cipher after shredding: %v", err)
	}
	if n, err := h.db.CountCustomerData(ctx, id); err != nil || n != 0 {
		t.Fatalf("%d documents of the customer survived shredding (%v)", n, err)
	}
	n, err := h.db.Keys.Collection("customer_keys").CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil || n != 0 {
		t.Fatalf("%d key documents left (%v)", n, err)
	}
	events, _, err := h.svc.Events(ctx, h.partner, id, tenants.PageQuery{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Type != tenants.EventShredded || last.Version != version {
		t.Fatalf("last event %+v, want customer.shredded v%d", last, version)
	}
}

func TestNoRetentionShredsDuringTerminate(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.active(t, "gone")
	if err := h.db.Tenant(c.ID).Collection("contacts").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.Terminate(ctx, h.partner, c.ID, 2, tenants.RetentionInput{Strategy: "NO_RETENTION"})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, tenants.StatusShredded, 4)
	if got.Label != nil || got.Retention.Strategy != tenants.NoRetention || got.Retention.Period != nil || got.TerminatedAt == nil {
		t.Fatalf("terminate answer %+v", got)
	}
	h.assertShredded(t, c.ID, 4)
	// A purge afterwards has nothing to do.
	sum, err := h.svc.Purge(ctx, tenants.PurgeOptions{Now: h.clock.Now()}, func(tenants.PurgeResult) {})
	if err != nil || sum.Due != 0 {
		t.Fatalf("purge after NO_RETENTION: %+v %v", sum, err)
	}
}

// TestCipherRefusesShreddedCustomer: another instance still holds the
// customer's key unwrapped in its keyring's cache after the shred, yet its
// Cipher refuses: the status is read before any key is handed out.
func TestCipherRefusesShreddedCustomer(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.active(t, "elsewhere")
	keyring := crypto.NewKeyring(h.db.Keys.Collection("customer_keys"), h.master)
	t.Cleanup(keyring.Close)
	other := tenants.NewService(tenants.Config{Control: h.db.Control, Keyring: keyring, Twilio: h.client, Data: h.db, Logger: storetest.Logger()})
	if _, err := other.Cipher(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Terminate(ctx, h.partner, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "NO_RETENTION"}); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Cipher(ctx, c.ID); err != nil {
		t.Fatalf("the other instance's keyring no longer caches the key (%v): the test shows nothing", err)
	}
	if _, err := other.Cipher(ctx, c.ID); !errors.Is(err, tenants.ErrDataShredded) {
		t.Fatalf("cipher of a shredded customer on another instance: %v, want ErrDataShredded", err)
	}
}

func (h *harness) terminated(t testing.TB, space string, months int) tenants.Customer {
	t.Helper()
	c := h.active(t, space)
	if _, err := h.svc.UpdateContactInfo(t.Context(), h.partner, c.ID, tenants.AnyVersion, contactInput()); err != nil {
		t.Fatal(err)
	}
	c, err := h.svc.Terminate(t.Context(), h.partner, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "TEMPORARY", Period: &months})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func collect(t *testing.T, h *harness, opts tenants.PurgeOptions) (tenants.PurgeSummary, map[string]string) {
	t.Helper()
	outcomes := map[string]string{}
	var mu sync.Mutex
	sum, err := h.svc.Purge(t.Context(), opts, func(r tenants.PurgeResult) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[r.CustomerID] = r.Outcome
		if r.Err != nil {
			t.Errorf("purge %s: %v", r.CustomerID, r.Err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum, outcomes
}

func TestPurge(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	soon := h.terminated(t, "soon", 1)   // due 2026-02-28
	later := h.terminated(t, "later", 3) // due 2026-04-30
	kept := h.active(t, "kept")
	forever := h.active(t, "forever")
	if _, err := h.svc.Terminate(ctx, h.partner, forever.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"}); err != nil {
		t.Fatal(err)
	}

	// Nothing is due yet.
	sum, _ := collect(t, h, tenants.PurgeOptions{Now: time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC)})
	if sum.Due != 0 {
		t.Fatalf("before any shredAt: %+v", sum)
	}

	// A dry run reports and changes nothing.
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sum, out := collect(t, h, tenants.PurgeOptions{Now: march, DryRun: true})
	if sum.Due != 1 || sum.Shredded != 0 || !sum.DryRun || out[soon.ID] != tenants.OutcomeWouldShred {
		t.Fatalf("dry run: %+v %v", sum, out)
	}
	if c, _ := h.svc.Customer(ctx, h.partner, soon.ID); c.Status != tenants.StatusTerminated || c.Label == nil {
		t.Fatalf("dry run changed the customer: %+v", c)
	}

	sum, out = collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Due != 1 || sum.Shredded != 1 || sum.Failed != 0 || out[soon.ID] != tenants.OutcomeShredded {
		t.Fatalf("purge: %+v %v", sum, out)
	}
	h.assertShredded(t, soon.ID, soon.Version+1)
	if c, _ := h.svc.Customer(ctx, h.partner, later.ID); c.Status != tenants.StatusTerminated || c.Label == nil {
		t.Fatalf("a customer not yet due was touched: %+v", c)
	}

	// A re-run is a no-op.
	sum, _ = collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Due != 0 {
		t.Fatalf("re-run: %+v", sum)
	}

	// Far in the future: the 3-month one goes; active and indefinite stay.
	sum, out = collect(t, h, tenants.PurgeOptions{Now: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)})
	if sum.Due != 1 || out[later.ID] != tenants.OutcomeShredded {
		t.Fatalf("later purge: %+v %v", sum, out)
	}
	for _, id := range []string{kept.ID, forever.ID} {
		if c, _ := h.svc.Customer(ctx, h.partner, id); c.Label == nil {
			t.Fatalf("customer %s lost its data", id)
		}
	}
}

func TestConcurrentPurgesShredEachCustomerOnce(t *testing.T) {
	h := newHarness(t)
	const n = 6
	ids := map[string]bool{}
	for i := range n {
		ids[h.terminated(t, fmt.Sprintf("conc-%d", i), 1).ID] = true
	}
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	shredded := map[string]int{}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.svc.Purge(context.Background(), tenants.PurgeOptions{Now: march}, func(r tenants.PurgeResult) {
				mu.Lock()
				defer mu.Unlock()
				if r.Outcome == tenants.OutcomeShredded {
					shredded[r.CustomerID]++
				}
				if r.Err != nil {
					t.Errorf("concurrent purge %s: %v", r.CustomerID, r.Err)
				}
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for id := range ids {
		if shredded[id] != 1 {
			t.Errorf("customer %s shredded %d times, want once", id, shredded[id])
		}
		c, _ := h.svc.Customer(t.Context(), h.partner, id)
		events, _, _ := h.svc.Events(t.Context(), h.partner, id, tenants.PageQuery{Limit: 200})
		var shredEvents int
		for _, e := range events {
			if e.Type == tenants.EventShredded {
				shredEvents++
			}
		}
		if c.Status != tenants.StatusShredded || shredEvents != 1 {
			t.Errorf("customer %s: %s with %d shredded events", id, c.Status, shredEvents)
		}
	}
}

// TestKilledPurgeIsFinished: a run that died after deleting the key but
// before marking the customer leaves a TERMINATED customer without a key and
// its lease behind; the next run after the lease expires finishes the job.
func TestKilledPurgeIsFinished(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "killed", 1)
	// What the killed run did: took the lease, deleted the key.
	if _, err := store.TakeLease(ctx, h.db.Control.Collection("locks"), "shred:"+c.ID, "dead-run", h.clock.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.keyring.Destroy(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// While the key is gone nothing opens its data, even before the mark.
	if _, err := h.svc.Cipher(ctx, c.ID); !errors.Is(err, tenants.ErrDataShredded) {
		t.Fatalf("cipher after key delete: %v", err)
	}
	if got, err := h.svc.Customer(ctx, h.partner, c.ID); err != nil || got.Label != nil || got.ContactInfo != nil {
		t.Fatalf("half-shredded customer: %+v %v", got, err)
	}
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// While the dead run's lease lasts, the customer is skipped.
	sum, _ := collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Due != 0 || sum.Failed != 0 {
		t.Fatalf("purge under another run's lease: %+v", sum)
	}
	h.clock.Add(6 * time.Minute)
	sum, out := collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Shredded != 1 || out[c.ID] != tenants.OutcomeShredded {
		t.Fatalf("next run: %+v %v", sum, out)
	}
	h.assertShredded(t, c.ID, c.Version+1)
}

// TestPendingCleanupIsFinished: a run killed after the mark but before the
// database drop is finished by the next run.
func TestPendingCleanupIsFinished(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "pending", 1)
	if err := h.db.Tenant(c.ID).Collection("contacts").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	failing := tenants.NewService(tenants.Config{
		Control: h.db.Control, Keyring: h.keyring, Twilio: twilio.NewSandbox(), Logger: storetest.Logger(), Now: h.clock.Now,
		// Killed after it deleted the data: the next run finishes.
		Data: deleting{h.db, func(ctx context.Context, id string) (int64, error) {
			n, err := h.db.DeleteCustomerData(ctx, id)
			return n, errors.Join(err, errors.New("killed"))
		}},
	})
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sum, err := failing.Purge(ctx, tenants.PurgeOptions{Now: march}, func(tenants.PurgeResult) {})
	if err != nil || sum.Failed != 1 {
		t.Fatalf("failing run: %+v %v", sum, err)
	}
	sum, out := collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Shredded != 1 || out[c.ID] != tenants.OutcomeShredded {
		t.Fatalf("next run: %+v %v", sum, out)
	}
	h.assertShredded(t, c.ID, c.Version+1)
	sum, _ = collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Due != 0 {
		t.Fatalf("third run: %+v", sum)
	}
}

func TestPartnerKeys(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	p, key, err := h.svc.CreatePartner(ctx, "Keyed")
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.svc.AuthenticatePartner(ctx, key)
	if err != nil || got.ID != p.ID {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	last := byte('A')
	if key[len(key)-1] == 'A' {
		last = 'B'
	}
	tampered := key[:len(key)-1] + string(last)
	for _, bad := range []string{"", "sbp_", key + "x", tampered, "Bearer " + key} {
		if _, err := h.svc.AuthenticatePartner(ctx, bad); !errors.Is(err, tenants.ErrUnauthorized) {
			t.Errorf("key %q: %v, want unauthorized", bad, err)
		}
	}
	var doc bson.M
	if err := h.db.Control.Collection("partners").FindOne(ctx, bson.D{{Key: "_id", Value: p.ID}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	secret := key[len("sbp_")+12+1:] // the part after the stored prefix
	if strings.Contains(fmt.Sprint(doc), secret) {
		t.Fatal("the partner document holds the key's secret")
	}
}

// TestLostEventIsRecopied: a crash after a change but before its event
// reached the events collection loses nothing: the event travels in the
// customer document and the next load (by any process) copies it.
func TestLostEventIsRecopied(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.active(t, "lost-event")
	if _, err := h.db.Control.Collection("events").DeleteOne(ctx, bson.D{{Key: "customerId", Value: c.ID}, {Key: "version", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	restarted := tenants.NewService(tenants.Config{Control: h.db.Control, Keyring: h.keyring, Twilio: h.client,
		Data: h.db, Logger: storetest.Logger(), Now: h.clock.Now})
	events, _, err := restarted.Events(ctx, h.partner, c.ID, tenants.PageQuery{Limit: 10})
	if err != nil || len(events) != 2 || events[1].Type != tenants.EventActivated || events[1].Version != 2 {
		t.Fatalf("events after the crash: %+v %v", events, err)
	}
}

// TestPartnerNameRace: 24 creates of one name (in any case) at once make
// one partner; the others are ErrPartnerNameTaken.
func TestPartnerNameRace(t *testing.T) {
	h := newHarness(t)
	for round := range 5 {
		name := fmt.Sprintf("Racing Resellers %d", round)
		var created, taken atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 24 {
			wg.Go(func() {
				<-start
				n := name
				if i%2 == 1 {
					n = strings.ToUpper(name)
				}
				_, _, err := h.svc.CreatePartner(t.Context(), n)
				switch {
				case err == nil:
					created.Add(1)
				case errors.Is(err, tenants.ErrPartnerNameTaken):
					taken.Add(1)
				default:
					t.Errorf("create: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if created.Load() != 1 || taken.Load() != 23 {
			t.Fatalf("round %d: %d created, %d taken", round, created.Load(), taken.Load())
		}
	}
}

// TestRetentionChanges: a legal hold (INDEFINITE) survives any purge;
// lifting it to TEMPORARY recomputes shredAt from terminatedAt (already
// past: due at the next purge); NO_RETENTION shreds in the call (+2); only
// a TERMINATED customer's retention changes.
func TestRetentionChanges(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	held := h.terminated(t, "held", 1)
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

	c, err := h.svc.ChangeRetention(ctx, h.partner, held.ID, held.Version, tenants.RetentionInput{Strategy: "INDEFINITE"})
	if err != nil || c.Version != held.Version+1 || c.Retention.Strategy != tenants.Indefinite || c.Retention.ShredAt != nil {
		t.Fatalf("legal hold: %+v %v", c, err)
	}
	if sum, out := collect(t, h, tenants.PurgeOptions{Now: far}); sum.Due != 0 || len(out) != 0 {
		t.Fatalf("a purge in 2099 touched a held customer: %+v", sum)
	}
	// A stale version is refused and changes nothing.
	if _, err := h.svc.ChangeRetention(ctx, h.partner, held.ID, held.Version, tenants.RetentionInput{Strategy: "NO_RETENTION"}); !errors.Is(err, switchboard.ErrVersionConflict) {
		t.Fatalf("stale version: %v", err)
	}
	one := 1
	c, err = h.svc.ChangeRetention(ctx, h.partner, held.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "TEMPORARY", Period: &one})
	want := tenants.AddMonths(*held.TerminatedAt, 1)
	if err != nil || c.Retention.ShredAt == nil || !c.Retention.ShredAt.Equal(want) {
		t.Fatalf("lifting the hold: %+v %v (shredAt want %v)", c.Retention, err, want)
	}
	if sum, out := collect(t, h, tenants.PurgeOptions{Now: far}); sum.Shredded != 1 || out[held.ID] != tenants.OutcomeShredded {
		t.Fatalf("the purge after lifting the hold: %+v %v", sum, out)
	}
	events, _, err := h.svc.Events(ctx, h.partner, held.ID, tenants.PageQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var changes int
	for _, e := range events {
		if e.Type == tenants.EventRetentionChanged {
			changes++
		}
	}
	if changes != 2 {
		t.Fatalf("%d retention_changed events, want 2", changes)
	}

	// NO_RETENTION shreds in the call: two changes.
	other := h.terminated(t, "lifted", 12)
	c, err = h.svc.ChangeRetention(ctx, h.partner, other.ID, other.Version, tenants.RetentionInput{Strategy: "NO_RETENTION"})
	if err != nil || c.Status != tenants.StatusShredded || c.Version != other.Version+2 {
		t.Fatalf("NO_RETENTION: %+v %v", c, err)
	}
	// Only while TERMINATED.
	active := h.active(t, "not-terminated")
	if _, err := h.svc.ChangeRetention(ctx, h.partner, active.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"}); !errors.Is(err, tenants.ErrInvalidTransition) {
		t.Fatalf("retention of an ACTIVE customer: %v", err)
	}
	if _, err := h.svc.ChangeRetention(ctx, h.partner, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "INDEFINITE"}); !errors.Is(err, tenants.ErrInvalidTransition) {
		t.Fatalf("retention of a SHREDDED customer: %v", err)
	}
	var verr *switchboard.ValidationError
	if _, err := h.svc.ChangeRetention(ctx, h.partner, active.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "TEMPORARY"}); !errors.As(err, &verr) || verr.Fields[0].Field != "period" {
		t.Fatalf("TEMPORARY without a period: %v", err)
	}
}

// undestroyable is a keyring whose Destroy does nothing: the key survives.
type undestroyable struct{ *crypto.Keyring }

func (undestroyable) Destroy(context.Context, string) error { return nil }

// TestShredVerifiesWithTheCanary: a shred whose canary still opens after
// the key was "destroyed" fails (reported by purge) and changes nothing;
// the next run with a keyring that destroys shreds, and the tombstone
// records the key and the failed open.
func TestShredVerifiesWithTheCanary(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "canary", 1)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	broken := tenants.NewService(tenants.Config{
		Control: h.db.Control, Keyring: undestroyable{h.keyring}, Twilio: twilio.NewSandbox(), Logger: storetest.Logger(),
		Now: h.clock.Now, Data: h.db,
	})
	var results []tenants.PurgeResult
	sum, err := broken.Purge(ctx, tenants.PurgeOptions{Now: march}, func(r tenants.PurgeResult) { results = append(results, r) })
	if err != nil || sum.Failed != 1 || len(results) != 1 || !errors.Is(results[0].Err, tenants.ErrErasureUnverified) {
		t.Fatalf("purge with a key that survives: %+v %+v %v", sum, results, err)
	}
	if got, _ := h.svc.Customer(ctx, h.partner, c.ID); got.Status != tenants.StatusTerminated || got.Version != c.Version {
		t.Fatalf("a failed shred changed the customer: %s v%d", got.Status, got.Version)
	}
	keyID, masterID, err := h.keyring.KeyInfo(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum, out := collect(t, h, tenants.PurgeOptions{Now: march})
	if sum.Shredded != 1 || out[c.ID] != tenants.OutcomeShredded {
		t.Fatalf("next run: %+v %v", sum, out)
	}
	var tomb struct {
		Erasure struct {
			KeyID, MasterKeyID, Verification string
		}
	}
	if err := h.db.Control.Collection("customers").FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Decode(&tomb); err != nil {
		t.Fatal(err)
	}
	if e := tomb.Erasure; e.KeyID != keyID || e.MasterKeyID != masterID || e.Verification != tenants.VerificationCanary {
		t.Fatalf("erasure record %+v, want key %s under %s, canary-open-failed", e, keyID, masterID)
	}
}

// deleting is the store with its deletes of customer data going through del.
type deleting struct {
	*store.DB
	del func(ctx context.Context, id string) (int64, error)
}

func (d deleting) DeleteCustomerData(ctx context.Context, id string) (int64, error) {
	return d.del(ctx, id)
}

// TestResumedShredCountsEveryDocumentOnce: a purge killed after it deleted
// the customer's documents, finished by the next run, issues a certificate
// whose documentsDeleted counts every document once (the count was taken
// before the first delete and kept in the cleanup mark), not the nothing
// that was left for the second run.
func TestResumedShredCountsEveryDocumentOnce(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	c := h.terminated(t, "resumed-count", 1)
	for i := range 3 {
		if err := h.db.Tenant(c.ID).Collection("contacts").InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("x%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := h.db.CountCustomerData(ctx, c.ID)
	if err != nil || held < 3 {
		t.Fatalf("the customer holds %d documents (%v)", held, err)
	}
	erasure := tokens.NewErasureKeys(h.db.Control.Collection("erasure_keys"), h.master, nil)
	cfg := func(data tenants.CustomerData) tenants.Config {
		return tenants.Config{Control: h.db.Control, Keyring: h.keyring, Twilio: h.client, Logger: storetest.Logger(), Now: h.clock.Now,
			Data: data, Certificates: erasure, Issuer: "http://test", Version: "test"}
	}
	killed := tenants.NewService(cfg(deleting{h.db, func(ctx context.Context, id string) (int64, error) {
		n, err := h.db.DeleteCustomerData(ctx, id)
		return n, errors.Join(err, errors.New("killed after the deletes"))
	}}))
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if sum, err := killed.Purge(ctx, tenants.PurgeOptions{Now: march}, func(tenants.PurgeResult) {}); err != nil || sum.Failed != 1 {
		t.Fatalf("killed run: %+v %v", sum, err)
	}
	if n, _ := h.db.CountCustomerData(ctx, c.ID); n != 0 {
		t.Fatalf("%d documents left after the killed run", n)
	}
	next := tenants.NewService(cfg(h.db))
	if sum, err := next.Purge(ctx, tenants.PurgeOptions{Now: march}, func(tenants.PurgeResult) {}); err != nil || sum.Shredded != 1 {
		t.Fatalf("next run: %+v %v", sum, err)
	}
	_, claims, err := next.ErasureCertificate(ctx, h.partner, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if claims["documentsDeleted"] != float64(held) {
		t.Fatalf("documentsDeleted = %v (%T), want %d", claims["documentsDeleted"], claims["documentsDeleted"], held)
	}
	if _, ok := claims["dataDeletedAt"].(string); !ok {
		t.Fatalf("dataDeletedAt = %v", claims["dataDeletedAt"])
	}
}
