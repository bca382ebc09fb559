// Package twilio adapts Twilio to the tenants.Twilio port. Client speaks to
// Twilio's REST API through twilio-go with the platform's master
// credentials; Sandbox stands in for it with no network.
//
// Invariants:
//   - every error of the port wraps tenants.ErrUpstreamUnavailable (Twilio
//     5xx or 429, no answer in time, a connection that failed, an answer that
//     is not Twilio's), tenants.ErrTwilioSubaccountLimit (Twilio error 21480)
//     or tenants.ErrSubaccountNotFound (Twilio 404, no sub-account of that name), or is
//     a plain error for any other refusal;
//   - every request of a Client goes to its configured API URL, never to a
//     host twilio-go picked;
//   - no error text, log line or printed value carries an auth token;
//   - closed is final: no adapter reopens a closed sub-account.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard/switchboard/tenants"
)

// DefaultAPIURL is Twilio's REST API.
const DefaultAPIURL = "https://api.twilio.com"

// DefaultTimeout is how long one Twilio request may take, answer included,
// before it counts as failed (API.md: no answer in 15 s is a 503).
const DefaultTimeout = 15 * time.Second

// codeSubaccountLimit is Twilio's error code for a master account that may
// not have more sub-accounts.
const codeSubaccountLimit = 21480

// listPageSize is how many accounts one filtered list request asks for. A
// FriendlyName filter normally matches one account, so one page suffices;
// twilio-go follows next_page_uri when it does not. maxPageSize is the
// most Twilio serves in one page.
const (
	listPageSize = 50
	maxPageSize  = 1000
)

// isAccountSID reports whether s has the shape of an account SID: "AC" and
// 32 lower-case hex digits. A SID goes into a URL path unescaped by
// twilio-go, so nothing else may reach it.
func isAccountSID(s string) bool {
	if len(s) != 34 || s[:2] != "AC" {
		return false
	}
	for _, r := range s[2:] {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// survivesQueryEncoding reports whether twilio-go sends name intact in a
// query string: it deletes every "." followed by digits from the encoded
// query (a side effect of how it encodes list parameters), so a name with
// one cannot be a list filter.
func survivesQueryEncoding(name string) bool {
	for i := 0; i+1 < len(name); i++ {
		if name[i] == '.' && name[i+1] >= '0' && name[i+1] <= '9' {
			return false
		}
	}
	return true
}

// isAlphanumeric reports whether s is ASCII letters and digits only, all
// that twilio-go accepts as a user name or password.
func isAlphanumeric(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return s != ""
}

// Config is the platform's Twilio master account and where to reach Twilio.
// It redacts AuthToken whenever it is printed or logged.
type Config struct {
	AccountSID string
	AuthToken  string
	// APIURL replaces https://api.twilio.com: scheme, host and an optional
	// path prefix (tests point it at a double).
	APIURL string
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
}

// String describes c with its auth token redacted.
func (c Config) String() string {
	return fmt.Sprintf("twilio.Config{AccountSID:%s AuthToken:%s APIURL:%s Timeout:%s}",
		c.AccountSID, redacted(c.AuthToken), c.APIURL, c.Timeout)
}

// GoString redacts the auth token under %#v.
func (c Config) GoString() string { return c.String() }

// Format redacts the auth token under every verb.
func (c Config) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue redacts the auth token in slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func redacted(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}

// Client is the twilio-go adapter of the tenants.Twilio port. Calls on
// sub-accounts use the master credentials with the sub-account's SID in the
// path. It is safe for concurrent use and redacts its credentials when
// printed.
type Client struct {
	sid, token string
	base       *url.URL
	timeout    time.Duration
	// transport is the connection pool every call shares.
	transport http.RoundTripper
}

var _ tenants.Twilio = (*Client)(nil)

// NewClient returns a Client for cfg. It refuses a config without both
// credentials or with an API URL that is not absolute; it does not call
// Twilio.
func NewClient(cfg Config) (*Client, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio client: account SID and auth token are both required")
	}
	// twilio-go refuses other characters on every call; say so once, here.
	if !isAlphanumeric(cfg.AccountSID) || !isAlphanumeric(cfg.AuthToken) {
		return nil, errors.New("twilio client: account SID and auth token must be letters and digits only")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("twilio client: negative timeout %s", cfg.Timeout)
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("twilio client: API URL must be an absolute http(s) URL")
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("twilio client: API URL must not carry credentials, a query or a fragment")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Client{sid: cfg.AccountSID, token: cfg.AuthToken, base: base, timeout: cfg.Timeout, transport: tr}, nil
}

// String describes c with its auth token redacted.
func (c *Client) String() string {
	if c == nil {
		return "twilio.Client(nil)"
	}
	return fmt.Sprintf("twilio.Client(account %s, API %s, token [redacted])", c.sid, c.base.Redacted())
}

// GoString redacts the auth token under %#v.
func (c *Client) GoString() string { return c.String() }

// Format redacts the auth token under every verb.
func (c *Client) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue redacts the auth token in slog.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// begin prepares one port call: a twilio-go service whose every request
// goes to the API URL under ctx, and the exchange that watches them.
// twilio-go builds its requests with context.Background() and a fixed
// host, so both are put right in the exchange's RoundTrip.
func (c *Client) begin(ctx context.Context) (*api.ApiService, *exchange) {
	ex := &exchange{ctx: ctx, base: c.base, next: c.transport}
	hc := &http.Client{
		Timeout:   c.timeout,
		Transport: ex,
		// Twilio does not redirect API calls; a redirect is not its answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tc := &client.Client{Credentials: client.NewCredentials(c.sid, c.token), HTTPClient: hc}
	tc.SetAccountSid(c.sid)
	return api.NewApiServiceWithClient(tc), ex
}

// CreateSubaccount creates an active sub-account named friendlyName. When
// the answer is lost (ErrUpstreamUnavailable), the sub-account may exist
// all the same: FindSubaccount tells.
func (c *Client) CreateSubaccount(ctx context.Context, friendlyName string) (tenants.Subaccount, error) {
	const op = "create twilio sub-account"
	svc, ex := c.begin(ctx)
	defer ex.finish()
	a, err := svc.CreateAccount(&api.CreateAccountParams{FriendlyName: &friendlyName})
	if err != nil {
		return tenants.Subaccount{}, ex.fail(op, err)
	}
	sub := toSubaccount(a)
	if !isAccountSID(sub.SID) || sub.AuthToken == "" || sub.Status == "" {
		return tenants.Subaccount{}, fmt.Errorf("%s: %w: the answer lacks the account's sid, auth token or status", op, tenants.ErrUpstreamUnavailable)
	}
	return sub, nil
}

// FindSubaccount returns the sub-account whose FriendlyName is exactly
// friendlyName, the most recently created if several (the later in Twilio's
// order if created in the same second), or an error wrapping
// tenants.ErrSubaccountNotFound. The master account itself is never returned.
func (c *Client) FindSubaccount(ctx context.Context, friendlyName string) (tenants.Subaccount, error) {
	const op = "find twilio sub-account"
	svc, ex := c.begin(ctx)
	defer ex.finish()
	params := &api.ListAccountParams{}
	if survivesQueryEncoding(friendlyName) {
		params.SetFriendlyName(friendlyName).SetPageSize(listPageSize)
	} else {
		// Unfiltered, in pages as large as Twilio serves.
		params.SetPageSize(maxPageSize)
	}
	list, err := svc.ListAccount(params)
	if err != nil {
		return tenants.Subaccount{}, ex.fail(op, err)
	}
	var best *api.ApiV2010Account
	var bestAt time.Time
	for i := range list {
		a := &list[i]
		// The list may be unfiltered (see survivesQueryEncoding), and a
		// sub-account must never be confused with another: match again.
		if a.FriendlyName == nil || *a.FriendlyName != friendlyName || a.Sid == nil || *a.Sid == c.sid {
			continue
		}
		at := created(a)
		if best == nil || !at.Before(bestAt) {
			best, bestAt = a, at
		}
	}
	if best == nil {
		return tenants.Subaccount{}, fmt.Errorf("%s: %w", op, tenants.ErrSubaccountNotFound)
	}
	return toSubaccount(best), nil
}

// SetSubaccountStatus moves a sub-account to active, suspended or closed.
// Setting the status it already has succeeds, closed included; a SID that
// is not an account SID, or that Twilio does not know, is
// tenants.ErrSubaccountNotFound.
func (c *Client) SetSubaccountStatus(ctx context.Context, sid string, status tenants.SubaccountStatus) error {
	const op = "set twilio sub-account status"
	if err := checkStatusChange(op, sid, status); err != nil {
		return err
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	want := string(status)
	_, err := svc.UpdateAccount(sid, &api.UpdateAccountParams{Status: &want})
	if err == nil {
		return nil
	}
	failed := ex.fail(op, err)
	// Twilio refuses any change to a closed account, closing it again
	// included; the port promises that setting the current status succeeds.
	var rest *client.TwilioRestError
	if errors.As(err, &rest) && rest.Status == http.StatusBadRequest {
		if a, ferr := svc.FetchAccount(sid); ferr == nil && a.Status != nil && *a.Status == want {
			return nil
		}
	}
	return failed
}

// checkStatusChange refuses, before any call, a status Twilio does not
// have and a string that is not an account SID (no sub-account has it).
func checkStatusChange(op, sid string, status tenants.SubaccountStatus) error {
	switch status {
	case tenants.SubaccountActive, tenants.SubaccountSuspended, tenants.SubaccountClosed:
	default:
		return fmt.Errorf("%s: unknown status %q", op, status)
	}
	if !isAccountSID(sid) {
		return fmt.Errorf("%s: %w: not an account SID", op, tenants.ErrSubaccountNotFound)
	}
	return nil
}

func toSubaccount(a *api.ApiV2010Account) tenants.Subaccount {
	var s tenants.Subaccount
	if a.Sid != nil {
		s.SID = *a.Sid
	}
	if a.AuthToken != nil {
		s.AuthToken = *a.AuthToken
	}
	if a.Status != nil {
		s.Status = tenants.SubaccountStatus(*a.Status)
	}
	return s
}

// created is an account's date_created (RFC 1123 with a numeric zone, as
// Twilio writes it); the zero time when absent or unreadable.
func created(a *api.ApiV2010Account) time.Time {
	if a.DateCreated == nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC1123Z, *a.DateCreated)
	if err != nil {
		return time.Time{}
	}
	return t
}
