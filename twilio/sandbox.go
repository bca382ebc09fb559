package twilio

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/switchboard/switchboard/tenants"
)

// Sandbox is the tenants.Twilio port with no network, behaving like
// Twilio's test credentials. Sub-accounts get Twilio-shaped SIDs derived
// from their FriendlyName and how many sub-accounts of that name this
// sandbox created before, so a sandbox restarted mid-lifecycle creates
// "the same" sub-account again; auth tokens are random. Statuses live in
// memory; closed is final. A well-formed SID the sandbox never saw (it
// forgets everything on restart) is taken as an active sub-account. It is
// safe for concurrent use and redacts the tokens it holds when printed.
type Sandbox struct {
	mu       sync.Mutex
	accounts map[string]*tenants.Subaccount // by SID
	byName   map[string][]string            // FriendlyName → SIDs, oldest first
}

var _ tenants.Twilio = (*Sandbox)(nil)

// NewSandbox returns a sandbox that holds no sub-account yet.
func NewSandbox() *Sandbox {
	return &Sandbox{accounts: map[string]*tenants.Subaccount{}, byName: map[string][]string{}}
}

// sandboxSID derives the SID of the n-th (from 0) sub-account named
// friendlyName.
func sandboxSID(friendlyName string, n int) string {
	seed := "switchboard sandbox sub-account\x00" + friendlyName
	if n > 0 {
		seed += "\x00" + strconv.Itoa(n)
	}
	sum := sha256.Sum256([]byte(seed))
	return "AC" + hex.EncodeToString(sum[:16])
}

// CreateSubaccount creates an active sub-account named friendlyName. Like
// Twilio, a second creation with the same name makes a second sub-account.
func (s *Sandbox) CreateSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	tok := make([]byte, 16)
	rand.Read(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A SID already in use (seen through SetSubaccountStatus after a
	// restart) is another sub-account: never take over, let alone reopen, it.
	var sid string
	for n := len(s.byName[friendlyName]); ; n++ {
		sid = sandboxSID(friendlyName, n)
		if _, taken := s.accounts[sid]; !taken {
			break
		}
	}
	a := &tenants.Subaccount{SID: sid, AuthToken: hex.EncodeToString(tok), Status: tenants.SubaccountActive}
	s.accounts[sid] = a
	s.byName[friendlyName] = append(s.byName[friendlyName], sid)
	return *a, nil
}

// FindSubaccount returns the most recently created sub-account named
// friendlyName, or an error wrapping tenants.ErrSubaccountNotFound.
func (s *Sandbox) FindSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sids := s.byName[friendlyName]
	if len(sids) == 0 {
		return tenants.Subaccount{}, fmt.Errorf("find sandbox sub-account: %w", tenants.ErrSubaccountNotFound)
	}
	return *s.accounts[sids[len(sids)-1]], nil
}

// SetSubaccountStatus moves a sub-account to active, suspended or closed.
// Setting the current status succeeds; leaving closed is refused with a
// plain error. A string that is not an account SID is tenants.ErrSubaccountNotFound.
func (s *Sandbox) SetSubaccountStatus(_ context.Context, sid string, status tenants.SubaccountStatus) error {
	const op = "set sandbox sub-account status"
	if err := checkStatusChange(op, sid, status); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[sid]
	if !ok {
		a = &tenants.Subaccount{SID: sid, Status: tenants.SubaccountActive}
		s.accounts[sid] = a
	}
	if a.Status == tenants.SubaccountClosed && status != tenants.SubaccountClosed {
		return fmt.Errorf("%s: sub-account %s is closed, which is final", op, sid)
	}
	a.Status = status
	return nil
}

// String describes s without the auth tokens it holds.
func (s *Sandbox) String() string {
	if s == nil {
		return "twilio.Sandbox(nil)"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("twilio.Sandbox(%d sub-accounts, tokens [redacted])", len(s.accounts))
}

// GoString redacts under %#v.
func (s *Sandbox) GoString() string { return s.String() }

// Format redacts under every verb.
func (s *Sandbox) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue redacts in slog.
func (s *Sandbox) LogValue() slog.Value { return slog.StringValue(s.String()) }
