package twilio_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/switchboard/switchboard/tenants"
)

var (
	sidShape   = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	tokenShape = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// isPlainRefusal reports whether err is an error of none of the port's
// kinds: a refusal the caller must not retry.
func isPlainRefusal(err error) bool {
	return err != nil && !errors.Is(err, tenants.ErrUpstreamUnavailable) &&
		!errors.Is(err, tenants.ErrTwilioSubaccountLimit) && !errors.Is(err, tenants.ErrSubaccountNotFound)
}

// portContract checks what every adapter of tenants.Twilio promises.
// between runs between two creations with the same name, so that the
// second is created later.
func portContract(t *testing.T, tw tenants.Twilio, between func()) {
	ctx := context.Background()
	find := func(t *testing.T, name string) tenants.Subaccount {
		t.Helper()
		got, err := tw.FindSubaccount(ctx, name)
		if err != nil {
			t.Fatalf("find %q: %v", name, err)
		}
		return got
	}

	t.Run("create and find", func(t *testing.T) {
		if _, err := tw.FindSubaccount(ctx, "switchboard customer c1"); !errors.Is(err, tenants.ErrSubaccountNotFound) {
			t.Fatalf("find before create: %v, want ErrNotFound", err)
		}
		a, err := tw.CreateSubaccount(ctx, "switchboard customer c1")
		if err != nil {
			t.Fatal(err)
		}
		if !sidShape.MatchString(a.SID) || !tokenShape.MatchString(a.AuthToken) || a.Status != tenants.SubaccountActive {
			t.Fatalf("created %q with a token of %d chars, status %q", a.SID, len(a.AuthToken), a.Status)
		}
		if got := find(t, "switchboard customer c1"); got != a {
			t.Fatalf("found %q %q, want the created %q", got.SID, got.Status, a.SID)
		}
		b, err := tw.CreateSubaccount(ctx, "switchboard customer c2")
		if err != nil {
			t.Fatal(err)
		}
		if b.SID == a.SID || b.AuthToken == a.AuthToken {
			t.Fatal("two sub-accounts share a SID or a token")
		}
		if _, err := tw.FindSubaccount(ctx, "switchboard customer c"); !errors.Is(err, tenants.ErrSubaccountNotFound) {
			t.Fatalf("a prefix of a name found something: %v", err)
		}
	})

	t.Run("same name twice: the newer is found", func(t *testing.T) {
		first, err := tw.CreateSubaccount(ctx, "switchboard customer twice")
		if err != nil {
			t.Fatal(err)
		}
		between()
		second, err := tw.CreateSubaccount(ctx, "switchboard customer twice")
		if err != nil {
			t.Fatal(err)
		}
		if second.SID == first.SID {
			t.Fatal("a second creation returned the first sub-account")
		}
		if got := find(t, "switchboard customer twice"); got.SID != second.SID {
			t.Fatalf("found %s, want the newer %s", got.SID, second.SID)
		}
	})

	t.Run("status changes, closed is final", func(t *testing.T) {
		a, err := tw.CreateSubaccount(ctx, "switchboard customer lifecycle")
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []tenants.SubaccountStatus{
			tenants.SubaccountSuspended, tenants.SubaccountSuspended, tenants.SubaccountActive,
			tenants.SubaccountActive, tenants.SubaccountClosed, tenants.SubaccountClosed,
		} {
			if err := tw.SetSubaccountStatus(ctx, a.SID, st); err != nil {
				t.Fatalf("set %s: %v", st, err)
			}
			if got := find(t, "switchboard customer lifecycle"); got.Status != st {
				t.Fatalf("after setting %s the sub-account is %s", st, got.Status)
			}
		}
		for _, st := range []tenants.SubaccountStatus{tenants.SubaccountActive, tenants.SubaccountSuspended} {
			if err := tw.SetSubaccountStatus(ctx, a.SID, st); !isPlainRefusal(err) {
				t.Fatalf("set %s on a closed sub-account: %v, want a plain refusal", st, err)
			}
		}
		if got := find(t, "switchboard customer lifecycle"); got.Status != tenants.SubaccountClosed {
			t.Fatalf("a refused change left the sub-account %s", got.Status)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		a, err := tw.CreateSubaccount(ctx, "switchboard customer args")
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.SetSubaccountStatus(ctx, a.SID, "deleted"); !isPlainRefusal(err) {
			t.Fatalf("unknown status: %v, want a plain refusal", err)
		}
		for _, sid := range []string{"", "AC123", "../Accounts", a.SID + "/Messages", "AC" + "0123456789ABCDEF0123456789ABCDEF"} {
			if err := tw.SetSubaccountStatus(ctx, sid, tenants.SubaccountSuspended); !errors.Is(err, tenants.ErrSubaccountNotFound) {
				t.Fatalf("SID %q: %v, want ErrNotFound", sid, err)
			}
		}
		if got := find(t, "switchboard customer args"); got.Status != tenants.SubaccountActive {
			t.Fatalf("refused calls changed the sub-account to %s", got.Status)
		}
	})
}
