package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
)

func TestSandboxKeepsThePortContract(t *testing.T) {
	portContract(t, twilio.NewSandbox(), func() {})
}

func TestSandboxRestartedMidLifecycle(t *testing.T) {
	ctx := context.Background()
	before := twilio.NewSandbox()
	a, err := before.CreateSubaccount(ctx, "switchboard customer r1")
	if err != nil {
		t.Fatal(err)
	}
	closed, err := before.CreateSubaccount(ctx, "switchboard customer r2")
	if err != nil {
		t.Fatal(err)
	}

	after := twilio.NewSandbox()
	// It forgot everything...
	if _, err := after.FindSubaccount(ctx, "switchboard customer r1"); !errors.Is(err, tenants.ErrSubaccountNotFound) {
		t.Fatalf("a new sandbox found %v", err)
	}
	// ...but the SIDs it hands out are derived from the name, so a retried
	// activation gets the same sub-account, with a fresh token.
	again, err := after.CreateSubaccount(ctx, "switchboard customer r1")
	if err != nil {
		t.Fatal(err)
	}
	if again.SID != a.SID || again.AuthToken == a.AuthToken || again.Status != tenants.SubaccountActive {
		t.Fatalf("after a restart: %s (token reused: %v, %s), want %s with a new token", again.SID, again.AuthToken == a.AuthToken, again.Status, a.SID)
	}
	// A SID handed out before the restart takes status changes...
	if err := after.SetSubaccountStatus(ctx, closed.SID, tenants.SubaccountSuspended); err != nil {
		t.Fatalf("suspend a SID from before the restart: %v", err)
	}
	if err := after.SetSubaccountStatus(ctx, closed.SID, tenants.SubaccountClosed); err != nil {
		t.Fatalf("close a SID from before the restart: %v", err)
	}
	if err := after.SetSubaccountStatus(ctx, closed.SID, tenants.SubaccountActive); err == nil || errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("reopen: %v, want a plain refusal", err)
	}
	// ...and creating its name again never takes over the closed one.
	other, err := after.CreateSubaccount(ctx, "switchboard customer r2")
	if err != nil {
		t.Fatal(err)
	}
	if other.SID == closed.SID || other.Status != tenants.SubaccountActive {
		t.Fatalf("created %s %s over the closed %s", other.SID, other.Status, closed.SID)
	}
}

func TestSandboxIsSafeForConcurrentUse(t *testing.T) {
	s := twilio.NewSandbox()
	ctx := context.Background()
	const n = 32
	var wg sync.WaitGroup
	sids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			a, err := s.CreateSubaccount(ctx, "switchboard customer shared")
			if err != nil {
				t.Error(err)
				return
			}
			sids[i] = a.SID
			if err := s.SetSubaccountStatus(ctx, a.SID, tenants.SubaccountSuspended); err != nil {
				t.Error(err)
			}
			if _, err := s.FindSubaccount(ctx, "switchboard customer shared"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, sid := range sids {
		if seen[sid] {
			t.Fatalf("SID %s handed out twice", sid)
		}
		seen[sid] = true
	}
}

func TestSandboxRedactsTokens(t *testing.T) {
	s := twilio.NewSandbox()
	a, err := s.CreateSubaccount(context.Background(), "switchboard customer secret")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		fmt.Fprintf(&b, verb+"\n", s)
	}
	slog.New(slog.NewTextHandler(&b, nil)).Info("sandbox", "twilio", s)
	if strings.Contains(b.String(), a.AuthToken) || !strings.Contains(b.String(), "1 sub-accounts") {
		t.Fatalf("printed:\n%s", b.String())
	}
}
