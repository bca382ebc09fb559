package twilio

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sync"

	"github.com/switchboard/switchboard/tenants"
)

// Sandbox stands in for Twilio with no network, like Twilio's test
// credentials: sub-accounts get Twilio-shaped SIDs derived from their
// FriendlyName (so a restarted sandbox "finds" the same one again), random
// auth tokens, and statuses kept in memory. Closed is final. It is safe for
// concurrent use.
type Sandbox struct {
	mu       sync.Mutex
	accounts map[string]*tenants.Subaccount // by SID
	names    map[string]string              // FriendlyName → SID
}

// NewSandbox returns an empty sandbox.
func NewSandbox() *Sandbox {
	return &Sandbox{accounts: map[string]*tenants.Subaccount{}, names: map[string]string{}}
}

var sidPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)

func sandboxSID(friendlyName string) string {
	sum := sha256.Sum256([]byte("sandbox sub-account:" + friendlyName))
	return "AC" + hex.EncodeToString(sum[:16])
}

// CreateSubaccount creates an active sub-account.
func (s *Sandbox) CreateSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	tok := make([]byte, 16)
	rand.Read(tok)
	sid := sandboxSID(friendlyName)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &tenants.Subaccount{SID: sid, AuthToken: hex.EncodeToString(tok), Status: tenants.SubaccountActive}
	s.accounts[sid] = a
	s.names[friendlyName] = sid
	return *a, nil
}

// FindSubaccount returns the sub-account created with friendlyName, or
// tenants.ErrNotFound.
func (s *Sandbox) FindSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sid, ok := s.names[friendlyName]
	if !ok {
		return tenants.Subaccount{}, fmt.Errorf("find sub-account: %w", tenants.ErrNotFound)
	}
	return *s.accounts[sid], nil
}

// SetSubaccountStatus changes a sub-account's status. A well-formed SID the
// sandbox has not seen (it forgets on restart) is taken as existing.
func (s *Sandbox) SetSubaccountStatus(_ context.Context, sid string, status tenants.SubaccountStatus) error {
	if !sidPattern.MatchString(sid) {
		return fmt.Errorf("set sub-account status: %w", tenants.ErrNotFound)
	}
	switch status {
	case tenants.SubaccountActive, tenants.SubaccountSuspended, tenants.SubaccountClosed:
	default:
		return fmt.Errorf("set sub-account status: invalid status %q", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[sid]
	if !ok {
		a = &tenants.Subaccount{SID: sid, Status: tenants.SubaccountActive}
		s.accounts[sid] = a
	}
	if a.Status == tenants.SubaccountClosed && status != tenants.SubaccountClosed {
		return fmt.Errorf("set sub-account status: sub-account %s is closed for good", sid)
	}
	a.Status = status
	return nil
}
