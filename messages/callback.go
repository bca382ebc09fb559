package messages

import (
	"context"
	"errors"
	"net/url"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/tenants"
)

// Webhook is a Twilio callback as received.
type Webhook struct {
	// URL is SWITCHBOARD_PUBLIC_URL + the path and query string as
	// received: what Twilio signed.
	URL string
	// Form is the form parameters of the body, as posted (every value of a
	// repeated name).
	Form      url.Values
	Signature string
}

// sidParams are the callback parameters that carry a Twilio SID, with the
// prefixes Twilio gives each kind.
var sidParams = map[string][]string{
	"AccountSid":          {"AC"},
	"MessageSid":          {"SM", "MM"},
	"SmsSid":              {"SM", "MM"},
	"SmsMessageSid":       {"SM", "MM"},
	"MessagingServiceSid": {"MG"},
	// TrustHub's status callbacks (customer profiles, trust products).
	"CustomerProfileSid": {"BU"},
	"TrustProductSid":    {"BU"},
	"BundleSid":          {"BU"},
}

// params returns the callback's form as the map Twilio signs, if it is one
// Twilio could have sent: every parameter once, AccountSid present, every
// SID of Twilio's shape, and SmsSid equal to MessageSid when both are sent.
// Anything else is ErrWebhookForbidden.
//
// Why: Twilio's signature joins the sorted names and values with no
// separator, so the same signature covers every way of re-cutting that
// string into parameters (MessageSid=SM…&NumMedia=0 and
// MessageSid=SM…NumMedia0 sign alike). A SID is exactly 34 characters of a
// known alphabet, so no re-cut survives these checks with a SID changed,
// and a MessageSid is stored once.
func (w Webhook) params() (map[string]string, error) {
	params := make(map[string]string, len(w.Form))
	for k, vs := range w.Form {
		if len(vs) != 1 {
			return nil, ErrWebhookForbidden
		}
		params[k] = vs[0]
	}
	if _, ok := params["AccountSid"]; !ok {
		return nil, ErrWebhookForbidden
	}
	for name, prefixes := range sidParams {
		if v, ok := params[name]; ok && !switchboard.IsTwilioSID(v, prefixes...) {
			return nil, ErrWebhookForbidden
		}
	}
	if m, ok := params["MessageSid"]; ok {
		if s, ok := params["SmsSid"]; ok && s != m {
			return nil, ErrWebhookForbidden
		}
	}
	return params, nil
}

// messageSID is the callback's MessageSid (SmsSid when Twilio sent only
// that), "" when it names none.
func messageSID(params map[string]string) string {
	if sid := params["MessageSid"]; sid != "" {
		return sid
	}
	return params["SmsSid"]
}

// customerOf returns the customer whose sub-account is sid, through the
// caches: a route never changes, and a SID that is no customer's is
// remembered as such for a short while (unknownTTL), so a flood of it
// costs one read.
func (s *Service) customerOf(ctx context.Context, sid string) (string, error) {
	if id, ok := s.routes.Get(sid); ok {
		return id, nil
	}
	if _, ok := s.unknown.Get(sid); ok {
		return "", ErrWebhookForbidden
	}
	id, err := s.cfg.Route(ctx, sid)
	if errors.Is(err, tenants.ErrNotFound) {
		s.unknown.Add(sid, struct{}{})
		return "", ErrWebhookForbidden
	}
	if err != nil {
		return "", err
	}
	s.routes.Add(sid, id)
	return id, nil
}

// account checks a callback and finds the sub-account it names: its form
// must be one Twilio could have sent (params), its AccountSid a customer's
// and its signature Twilio's with that sub-account's own token; else
// ErrWebhookForbidden, and nothing was read for a form that fails the
// first check. ok is false for a customer that is neither ACTIVE nor
// DEACTIVATED: the callback is answered and changes nothing.
func (s *Service) account(ctx context.Context, w Webhook) (acct tenants.MessagingAccount, params map[string]string, ok bool, err error) {
	params, err = w.params()
	if err != nil || w.Signature == "" {
		return acct, nil, false, ErrWebhookForbidden
	}
	sid := params["AccountSid"]
	customerID, err := s.customerOf(ctx, sid)
	if err != nil {
		return acct, nil, false, err
	}
	acct, err = s.accountOf(ctx, customerID)
	if errors.Is(err, tenants.ErrNotFound) {
		return acct, nil, false, ErrWebhookForbidden
	}
	if err != nil {
		return acct, nil, false, err
	}
	if acct.AccountSID != sid {
		return acct, nil, false, ErrWebhookForbidden
	}
	if acct.Status == tenants.StatusShredded || acct.AuthToken == "" {
		// Nothing of the customer can be read or changed any more, its
		// token included: answered, nothing changes.
		return acct, nil, false, nil
	}
	if !s.cfg.Twilio.ValidSignature(acct.AuthToken, w.URL, params, w.Signature) {
		return acct, nil, false, ErrWebhookForbidden
	}
	return acct, params, acct.Status == tenants.StatusActive || acct.Status == tenants.StatusDeactivated, nil
}
