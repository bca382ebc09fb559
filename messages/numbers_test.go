package messages_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

// lostPurchase buys at Twilio, then loses the answer once.
type lostPurchase struct {
	messages.Twilio
	lost atomic.Bool
}

func (l *lostPurchase) BuyNumber(ctx context.Context, sid, number, smsURL string) (messages.Number, error) {
	n, err := l.Twilio.BuyNumber(ctx, sid, number, smsURL)
	if err == nil && l.lost.CompareAndSwap(false, true) {
		return messages.Number{}, tenants.ErrUpstreamUnavailable
	}
	return n, err
}

// TestLostPurchaseIsAdoptedNotBoughtAgain: a search purchase whose answer
// was lost is recorded by the next purchase request, which answers with it
// instead of buying a second number.
func TestLostPurchaseIsAdoptedNotBoughtAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var offset atomic.Int64
	svc := messages.NewService(messages.Config{
		Control: e.p.DB.Control, Tenant: e.p.DB.Tenant, Cipher: e.p.Tenants.Cipher, Account: e.p.Tenants.MessagingAccount, Route: e.p.Tenants.SubaccountCustomer,
		Contacts: e.p.Contacts, Twilio: &lostPurchase{Twilio: e.client}, PublicURL: e.p.PublicURL, Secret: e.p.Master.DeriveKey("messaging ids"),
		Logger: storetest.Logger(), Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	us := ptr("US")
	before := len(e.dbl.Numbers())
	if _, err := svc.BuyNumber(t.Context(), e.partnerID, e.customerID, messages.BuyInput{Country: us}); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("first purchase: %v", err)
	}
	if n := len(e.dbl.Numbers()); n != before+1 {
		t.Fatalf("%d numbers at Twilio after the lost purchase, want %d", n, before+1)
	}
	offset.Store(int64(2 * time.Minute))
	got, err := svc.BuyNumber(t.Context(), e.partnerID, e.customerID, messages.BuyInput{Country: us})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.dbl.Numbers()); n != before+1 {
		t.Fatalf("the retry bought another number: %d at Twilio", n)
	}
	list, err := svc.Numbers(t.Context(), e.partnerID, e.customerID)
	if err != nil || len(list) != 2 || list[1].ID != got.ID {
		t.Fatalf("numbers %+v (%v), adopted %+v", list, err, got)
	}
	// Settled: the next search buys a new one.
	if _, err := svc.BuyNumber(t.Context(), e.partnerID, e.customerID, messages.BuyInput{Country: us}); err != nil || len(e.dbl.Numbers()) != before+2 {
		t.Fatalf("next purchase: %v, %d at Twilio", err, len(e.dbl.Numbers()))
	}
}
