package twilio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio"
)

// A message Inbound made is known to every sandbox with the same secret
// (the server's, when `switchboard sandbox inbound` made it), and only to
// those, and only in its own sub-account.
func TestSandboxInboundIsKnownAcrossProcesses(t *testing.T) {
	secret := []byte("sandbox secret of this data dir")
	cmd := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: secret})
	defer cmd.Close()
	acct := "AC" + strings.Repeat("ab", 16)
	p := cmd.Inbound(acct, "+14155550180", "+14155550100", "START")
	sid := p["MessageSid"]
	if p["SmsSid"] != sid || p["AccountSid"] != acct || p["Body"] != "START" {
		t.Fatalf("callback %v", p)
	}
	if m, err := cmd.FetchMessage(t.Context(), acct, sid); err != nil || m.Body != "START" || m.Direction != "inbound" {
		t.Fatalf("in the same sandbox: %+v %v", m, err)
	}
	server := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: secret})
	defer server.Close()
	if m, err := server.FetchMessage(t.Context(), acct, sid); err != nil || m.SID != sid || m.AccountSID != acct || m.Direction != "inbound" {
		t.Fatalf("in another sandbox with the secret: %+v %v", m, err)
	}
	other := "AC" + strings.Repeat("cd", 16)
	if _, err := server.FetchMessage(t.Context(), other, sid); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("in another sub-account: %v", err)
	}
	stranger := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: []byte("another secret")})
	defer stranger.Close()
	if _, err := stranger.FetchMessage(t.Context(), acct, sid); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("in a sandbox with another secret: %v", err)
	}
	if _, err := server.FetchMessage(t.Context(), acct, "SM"+strings.Repeat("0", 32)); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("a SID nobody made: %v", err)
	}
}
