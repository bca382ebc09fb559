package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
)

// Sandbox is the tenants.Twilio and messages.Twilio ports with no network
// (but for the status callbacks it posts), behaving like Twilio's test
// credentials. Sub-accounts get Twilio-shaped SIDs derived from their
// FriendlyName and how many sub-accounts of that name this sandbox created
// before, so a sandbox restarted mid-lifecycle creates "the same"
// sub-account again; auth tokens are derived from the sandbox's secret and
// the SID (AuthToken), so a sandbox restarted with the same secret signs
// with the same tokens. Statuses, numbers and messages live in memory;
// closed is final. A well-formed SID the sandbox never saw (it forgets
// everything on restart) is taken as an active sub-account. It is safe for
// concurrent use and redacts the tokens it holds when printed. Close stops
// the callbacks it has yet to post.
type Sandbox struct {
	secret []byte
	http   *http.Client
	delay  time.Duration

	// ctx is cancelled by Close; every callback goroutine watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	accounts map[string]*tenants.Subaccount       // by SID
	byName   map[string][]string                  // FriendlyName → SIDs, oldest first
	numbers  map[string]*sandboxNumber            // by phone number (E.164)
	msgs     map[string][]*messages.TwilioMessage // by account SID, oldest first
	msgBySID map[string]*messages.TwilioMessage   // by message SID
}

var _ tenants.Twilio = (*Sandbox)(nil)

// SandboxConfig configures NewSandboxWith. The zero value is what
// NewSandbox uses.
type SandboxConfig struct {
	// Secret derives the sub-accounts' auth tokens (AuthToken); nil or
	// empty: a random secret, so tokens change with every sandbox.
	Secret []byte
	// HTTPClient posts the status callbacks; nil: a client with a
	// DefaultTimeout (15 s) timeout.
	HTTPClient *http.Client
	// DeliveryDelay is how long after "sent" a message goes "delivered";
	// zero (or less): DefaultDeliveryDelay.
	DeliveryDelay time.Duration
}

// DefaultDeliveryDelay is how long after "sent" a sandbox message goes
// "delivered" unless SandboxConfig says otherwise.
const DefaultDeliveryDelay = time.Second

// NewSandbox returns a sandbox that holds no sub-account yet, with a
// random secret and the default callback client and delivery delay.
func NewSandbox() *Sandbox { return NewSandboxWith(SandboxConfig{}) }

// NewSandboxWith returns a sandbox configured by cfg that holds no
// sub-account yet.
func NewSandboxWith(cfg SandboxConfig) *Sandbox {
	secret := append([]byte(nil), cfg.Secret...)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret) // never fails (crypto/rand)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	delay := cfg.DeliveryDelay
	if delay <= 0 {
		delay = DefaultDeliveryDelay
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sandbox{
		secret: secret, http: hc, delay: delay, ctx: ctx, cancel: cancel,
		accounts: map[string]*tenants.Subaccount{}, byName: map[string][]string{},
		numbers: map[string]*sandboxNumber{}, msgs: map[string][]*messages.TwilioMessage{},
		msgBySID: map[string]*messages.TwilioMessage{},
	}
}

// AuthToken returns the sandbox auth token of the sub-account sid: the
// first 32 hex digits of HMAC-SHA256(secret, sid). It is the token
// CreateSubaccount hands out and the one the sandbox signs that
// sub-account's callbacks with. A string that is not an account SID has no
// token: "".
func (s *Sandbox) AuthToken(sid string) string {
	if !isAccountSID(sid) {
		return ""
	}
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(sid)) // a hash.Hash never fails to write
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Close cancels the callbacks the sandbox has yet to post (and the status
// changes that go with them) and waits for them to stop. Messages created
// after Close are refused. Close may be called more than once.
func (s *Sandbox) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
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
	a := &tenants.Subaccount{SID: sid, AuthToken: s.AuthToken(sid), Status: tenants.SubaccountActive}
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
		a = &tenants.Subaccount{SID: sid, AuthToken: s.AuthToken(sid), Status: tenants.SubaccountActive}
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
