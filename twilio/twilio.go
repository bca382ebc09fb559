// Package twilio adapts Twilio to the tenants.Twilio port: Client speaks to
// Twilio's REST API through twilio-go, Sandbox stands in for it with no
// network. Every error wraps tenants.ErrUpstreamUnavailable (5xx, 429, no
// answer in time, anything that is not a Twilio answer),
// tenants.ErrTwilioSubaccountLimit (Twilio error 21480) or tenants.ErrNotFound,
// or is a plain error for other refusals. No error text or log line carries
// a token.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard/switchboard/tenants"
)

// DefaultTimeout is how long a Twilio call may take before it counts as
// failed.
const DefaultTimeout = 15 * time.Second

// errSubaccountLimit is Twilio's error code for too many sub-accounts.
const errSubaccountLimit = 21480

// Config is the platform's Twilio master account and where to reach Twilio.
type Config struct {
	AccountSID string
	AuthToken  string
	// APIURL replaces https://api.twilio.com (tests point it at a double).
	APIURL  string
	Timeout time.Duration
}

// String redacts the auth token.
func (c Config) String() string {
	return fmt.Sprintf("twilio.Config{AccountSID:%s AuthToken:[redacted] APIURL:%s Timeout:%s}", c.AccountSID, c.APIURL, c.Timeout)
}

// GoString redacts the auth token under %#v.
func (c Config) GoString() string { return c.String() }

// LogValue redacts the auth token in slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Client is the twilio-go adapter. Calls on sub-accounts use the master
// credentials with the sub-account's SID in the path.
type Client struct {
	api *api.ApiService
}

// NewClient returns a Client for cfg.
func NewClient(cfg Config) (*Client, error) {
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("twilio: account SID and auth token are both required")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.twilio.com"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("twilio: API URL %q is not an absolute URL", cfg.APIURL)
	}
	hc := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: rewrite{base: base, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	rest := twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c})
	return &Client{api: rest.Api}, nil
}

// rewrite sends every request twilio-go addresses to *.twilio.com to base
// instead: twilio-go hard-codes https://api.twilio.com.
type rewrite struct {
	base *url.URL
	next http.RoundTripper
}

func (t rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Host, "twilio.com") {
		r = r.Clone(r.Context())
		r.URL.Scheme = t.base.Scheme
		r.URL.Host = t.base.Host
		r.URL.Path = strings.TrimSuffix(t.base.Path, "/") + r.URL.Path
		r.Host = t.base.Host
	}
	return t.next.RoundTrip(r)
}

// mapErr turns a twilio-go error into the port's vocabulary.
func mapErr(op string, err error) error {
	var rest *client.TwilioRestError
	if errors.As(err, &rest) {
		switch {
		case rest.Code == errSubaccountLimit:
			return fmt.Errorf("%s: %w (Twilio %d)", op, tenants.ErrTwilioSubaccountLimit, rest.Code)
		case rest.Status >= 500 || rest.Status == http.StatusTooManyRequests:
			return fmt.Errorf("%s: %w (Twilio status %d, code %d)", op, tenants.ErrUpstreamUnavailable, rest.Status, rest.Code)
		case rest.Status == http.StatusNotFound:
			return fmt.Errorf("%s: %w (Twilio code %d)", op, tenants.ErrNotFound, rest.Code)
		default:
			return fmt.Errorf("%s: Twilio refused: status %d, code %d: %s", op, rest.Status, rest.Code, rest.Message)
		}
	}
	// Timeouts, refused connections and answers that are not Twilio's.
	return fmt.Errorf("%s: %w: %s", op, tenants.ErrUpstreamUnavailable, errorClass(err))
}

// errorClass describes a transport error without its URL or body.
func errorClass(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "no answer in time"
		}
		return "connection failed"
	}
	return "unreadable answer"
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

// CreateSubaccount creates a sub-account with the given FriendlyName.
func (c *Client) CreateSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	a, err := c.api.CreateAccount(&api.CreateAccountParams{FriendlyName: &friendlyName})
	if err != nil {
		return tenants.Subaccount{}, mapErr("create sub-account", err)
	}
	return toSubaccount(a), nil
}

// FindSubaccount returns the sub-account named friendlyName, preferring one
// that is not closed and then the most recently created, or
// tenants.ErrNotFound.
func (c *Client) FindSubaccount(_ context.Context, friendlyName string) (tenants.Subaccount, error) {
	pageSize := 50
	list, err := c.api.ListAccount(&api.ListAccountParams{FriendlyName: &friendlyName, PageSize: &pageSize})
	if err != nil {
		return tenants.Subaccount{}, mapErr("find sub-account", err)
	}
	var found []api.ApiV2010Account
	for _, a := range list {
		if a.FriendlyName != nil && *a.FriendlyName == friendlyName {
			found = append(found, a)
		}
	}
	if len(found) == 0 {
		return tenants.Subaccount{}, fmt.Errorf("find sub-account: %w", tenants.ErrNotFound)
	}
	sort.SliceStable(found, func(i, j int) bool {
		ci, cj := isClosed(found[i]), isClosed(found[j])
		if ci != cj {
			return !ci
		}
		return created(found[i]).After(created(found[j]))
	})
	return toSubaccount(&found[0]), nil
}

func isClosed(a api.ApiV2010Account) bool { return a.Status != nil && *a.Status == "closed" }

func created(a api.ApiV2010Account) time.Time {
	if a.DateCreated == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC1123Z, *a.DateCreated)
	return t
}

// SetSubaccountStatus moves a sub-account to active, suspended or closed.
func (c *Client) SetSubaccountStatus(_ context.Context, sid string, status tenants.SubaccountStatus) error {
	s := string(status)
	if _, err := c.api.UpdateAccount(sid, &api.UpdateAccountParams{Status: &s}); err != nil {
		return mapErr("set sub-account status", err)
	}
	return nil
}

// ValidSignature reports whether signature is Twilio's X-Twilio-Signature
// for a callback to url with the given form params, signed with authToken
// (the auth token of the account that owns the number), as twilio-go's
// request validator computes it (HMAC-SHA1, base64).
func ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	v := client.NewRequestValidator(authToken)
	return v.Validate(url, params, signature)
}
