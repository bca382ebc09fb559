package twilio_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

const (
	sid   = "AC11111111111111111111111111111111"
	token = "22222222222222222222222222222222"
)

func newClient(t *testing.T, srv *twiliotest.Server, tok string) *twilio.Client {
	t.Helper()
	c, err := twilio.NewClient(twilio.Config{AccountSID: sid, AuthToken: tok, APIURL: srv.URL(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientAgainstDouble(t *testing.T) {
	srv := twiliotest.NewServer(t, sid, token)
	c := newClient(t, srv, token)
	ctx := context.Background()

	if _, err := c.FindSubaccount(ctx, "nobody"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("find before create: %v", err)
	}
	sub, err := c.CreateSubaccount(ctx, "switchboard customer x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sub.SID, "AC") || len(sub.SID) != 34 || sub.AuthToken == "" || sub.Status != tenants.SubaccountActive {
		t.Fatalf("created %+v", sub)
	}
	found, err := c.FindSubaccount(ctx, "switchboard customer x")
	if err != nil || found.SID != sub.SID || found.AuthToken != sub.AuthToken {
		t.Fatalf("find: %+v %v", found, err)
	}
	for _, st := range []tenants.SubaccountStatus{tenants.SubaccountSuspended, tenants.SubaccountActive, tenants.SubaccountClosed} {
		if err := c.SetSubaccountStatus(ctx, sub.SID, st); err != nil {
			t.Fatalf("set %s: %v", st, err)
		}
		if got := srv.Accounts()[0].Status; got != string(st) {
			t.Fatalf("double has %s, want %s", got, st)
		}
	}
	err = c.SetSubaccountStatus(ctx, sub.SID, tenants.SubaccountActive)
	if err == nil || errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("reopening a closed account: %v", err)
	}
	if err := c.SetSubaccountStatus(ctx, "AC"+strings.Repeat("0", 32), tenants.SubaccountClosed); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("unknown sid: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{500, 502, 503, 429} {
		srv := twiliotest.NewServer(t, sid, token)
		srv.FailNext(1, status)
		if _, err := newClient(t, srv, token).CreateSubaccount(ctx, "x"); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
			t.Errorf("Twilio %d: %v", status, err)
		}
		if srv.CreateCount() != 0 {
			t.Errorf("Twilio %d created an account", status)
		}
	}
	t.Run("timeout", func(t *testing.T) {
		srv := twiliotest.NewServer(t, sid, token)
		srv.SetDelay(5 * time.Second)
		start := time.Now()
		if _, err := newClient(t, srv, token).FindSubaccount(ctx, "x"); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
			t.Fatalf("slow Twilio: %v", err)
		}
		// Not a performance bound: only a client that gave up at its 300 ms
		// timeout can have returned before the 5 s answer.
		if time.Since(start) > 4*time.Second {
			t.Fatal("the client waited past its timeout")
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		c, _ := twilio.NewClient(twilio.Config{AccountSID: sid, AuthToken: token, APIURL: "http://127.0.0.1:1", Timeout: time.Second})
		if _, err := c.CreateSubaccount(ctx, "x"); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
			t.Fatalf("no Twilio: %v", err)
		}
	})
	t.Run("sub-account limit", func(t *testing.T) {
		srv := twiliotest.NewServer(t, sid, token)
		srv.SetSubaccountLimit(1)
		c := newClient(t, srv, token)
		if _, err := c.CreateSubaccount(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateSubaccount(ctx, "b"); !errors.Is(err, tenants.ErrTwilioSubaccountLimit) {
			t.Fatalf("past the limit: %v", err)
		}
	})
	t.Run("wrong credentials", func(t *testing.T) {
		srv := twiliotest.NewServer(t, sid, token)
		wrong := "33333333333333333333333333333333"
		_, err := newClient(t, srv, wrong).CreateSubaccount(ctx, "x")
		if err == nil || errors.Is(err, tenants.ErrUpstreamUnavailable) || errors.Is(err, tenants.ErrTwilioSubaccountLimit) {
			t.Fatalf("wrong credentials: %v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), token) {
			t.Fatal("error text carries a token")
		}
	})
	t.Run("lost answer, then found", func(t *testing.T) {
		srv := twiliotest.NewServer(t, sid, token)
		c := newClient(t, srv, token)
		srv.LoseNextCreateAnswer()
		if _, err := c.CreateSubaccount(ctx, "lost"); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
			t.Fatalf("lost answer: %v", err)
		}
		found, err := c.FindSubaccount(ctx, "lost")
		if err != nil || found.SID != srv.Accounts()[0].SID {
			t.Fatalf("find after a lost answer: %+v %v", found, err)
		}
	})
}

func TestConfigRedactsToken(t *testing.T) {
	cfg := twilio.Config{AccountSID: sid, AuthToken: token}
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg); strings.Contains(s, token) {
		t.Fatalf("config prints its token: %s", s)
	}
}

func TestSandbox(t *testing.T) {
	ctx := context.Background()
	s := twilio.NewSandbox()
	if _, err := s.FindSubaccount(ctx, "x"); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatal(err)
	}
	a, err := s.CreateSubaccount(ctx, "switchboard customer 1")
	if err != nil || len(a.SID) != 34 || !strings.HasPrefix(a.SID, "AC") || len(a.AuthToken) != 32 {
		t.Fatalf("%+v %v", a, err)
	}
	if again := twilio.NewSandbox(); true {
		b, _ := again.CreateSubaccount(ctx, "switchboard customer 1")
		if b.SID != a.SID {
			t.Fatal("sandbox SIDs are not derived from the name")
		}
		// A restarted sandbox accepts status changes of SIDs it never saw.
		if err := again.SetSubaccountStatus(ctx, "AC"+strings.Repeat("a", 32), tenants.SubaccountSuspended); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubaccountStatus(ctx, a.SID, tenants.SubaccountClosed); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubaccountStatus(ctx, a.SID, tenants.SubaccountActive); err == nil || errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("reopening closed: %v", err)
	}
	if err := s.SetSubaccountStatus(ctx, "not-a-sid", tenants.SubaccountClosed); !errors.Is(err, tenants.ErrNotFound) {
		t.Fatalf("bad sid: %v", err)
	}
}

// sign computes X-Twilio-Signature independently, as Twilio documents it.
func sign(tok, url string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(url)
	for _, k := range keys {
		b.WriteString(k + params[k])
	}
	m := hmac.New(sha1.New, []byte(tok))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestValidSignature(t *testing.T) {
	url := "https://switchboard.example.com/v1/webhooks/twilio/inbound?x=1"
	params := map[string]string{"AccountSid": "AC" + strings.Repeat("1", 32), "Body": "hello", "From": "+14155550100"}
	sig := sign(token, url, params)
	if !twilio.ValidSignature(token, url, params, sig) {
		t.Fatal("a correct signature is refused")
	}
	if twilio.ValidSignature("other", url, params, sig) {
		t.Fatal("another account's token verifies")
	}
	params["Body"] = "tampered"
	if twilio.ValidSignature(token, url, params, sig) {
		t.Fatal("a tampered form verifies")
	}
	if twilio.ValidSignature(token, url, params, "") || twilio.ValidSignature("", url, params, sig) {
		t.Fatal("empty signature or token verifies")
	}
}

func FuzzValidSignature(f *testing.F) {
	f.Add("https://x.example/v1/webhooks/twilio/status", "AccountSid", "AC1", "sig")
	f.Add("", "", "", "")
	f.Add("https://x.example:443/p?q=1", "Body", "hi", "")
	f.Fuzz(func(t *testing.T, url, k, v, sig string) {
		params := map[string]string{k: v}
		if !twilio.ValidSignature(token, url, params, sig) {
			return
		}
		// Accepted: it must be the real signature (twilio-go also tries the
		// URL with and without its default port).
		if sig == "" || (!strings.Contains(url, ":443") && !strings.Contains(url, ":80") && sig != sign(token, url, params)) {
			t.Fatalf("accepted a wrong signature %q for %q", sig, url)
		}
	})
}
