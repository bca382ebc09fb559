package messages

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twilio/twilio-go/client"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/tenants"
)

// Webhook is a Twilio callback as received.
type Webhook struct {
	// URL is SWITCHBOARD_PUBLIC_URL + the path and query string as
	// received: what Twilio signed.
	URL       string
	Params    map[string]string
	Signature string
}

// account finds and checks the sub-account a callback names: its
// AccountSid must be a customer's (else ErrWebhookForbidden) and the
// signature Twilio's with that sub-account's own token. ok is false for a
// customer that is neither ACTIVE nor DEACTIVATED: the callback is answered
// and changes nothing.
func (s *Service) account(ctx context.Context, w Webhook) (acct tenants.MessagingAccount, ok bool, err error) {
	sid := w.Params["AccountSid"]
	if sid == "" || w.Signature == "" {
		return acct, false, ErrWebhookForbidden
	}
	customerID, ok := s.routes.Get(sid)
	if !ok {
		var r subaccountRoute
		if err := s.control(subaccountsColl).FindOne(ctx, idFilter(sid)).Decode(&r); err != nil {
			if errors.Is(err, mongo.ErrNoDocuments) {
				return acct, false, ErrWebhookForbidden
			}
			return acct, false, fmt.Errorf("route webhook: %w", err)
		}
		customerID = r.CustomerID
		s.routes.Add(sid, customerID)
	}
	acct, err = s.accountOf(ctx, customerID)
	if errors.Is(err, tenants.ErrNotFound) {
		return acct, false, ErrWebhookForbidden
	}
	if err != nil {
		return acct, false, err
	}
	if acct.AccountSID != sid {
		return acct, false, ErrWebhookForbidden
	}
	if acct.Status == tenants.StatusShredded || acct.AuthToken == "" {
		// Nothing of the customer can be read or changed any more, its
		// token included: answered, nothing changes.
		return acct, false, nil
	}
	if v := client.NewRequestValidator(acct.AuthToken); !v.Validate(w.URL, w.Params, w.Signature) {
		return acct, false, ErrWebhookForbidden
	}
	return acct, acct.Status == tenants.StatusActive || acct.Status == tenants.StatusDeactivated, nil
}

// StatusCallback applies a signed status callback for message mid (from
// the callback URL; when absent, the message that registered MessageSid).
// An unknown message, or one whose Twilio SID is another, changes nothing.
func (s *Service) StatusCallback(ctx context.Context, w Webhook, mid string) error {
	acct, ok, err := s.account(ctx, w)
	if err != nil || !ok {
		return err
	}
	h, err := s.OpenVerified(ctx, acct.CustomerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	sid := w.Params["MessageSid"]
	if sid == "" {
		sid = w.Params["SmsSid"]
	}
	if mid == "" && sid != "" {
		if mid, err = h.sidOwner(ctx, sid); err != nil {
			return err
		}
	}
	if mid == "" {
		return nil
	}
	tw := w.Params["MessageStatus"]
	if tw == "" {
		tw = w.Params["SmsStatus"]
	}
	code, _ := strconv.Atoi(w.Params["ErrorCode"])
	now := s.now()
	var learnt bool
	d, err := h.apply(ctx, mid, 0, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
		if cur.TwilioSID != nil && sid != "" && *cur.TwilioSID != sid {
			return nil, nil, nil // another message's status
		}
		nxt, np := advanced(cur, p, tw, code, "", sid, now)
		learnt = nxt != nil && cur.TwilioSID == nil && nxt.TwilioSID != nil
		return nxt, np, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if learnt {
		if _, err := h.registerSID(ctx, sid, mid); err != nil {
			return err
		}
	}
	// Twilio's opt-out is recorded as of the message (optedOutAtTwilio):
	// a retry of this callback records it if a stop lost it, and never
	// undoes a later opt-in.
	if d.Status == StatusFailed && d.ErrorCode != nil && *d.ErrorCode == CodeOptedOut {
		if err := h.optedOutAtTwilio(ctx, d); err != nil {
			return err
		}
		if d.ContactID != nil {
			p, err := h.open(d)
			if err != nil {
				return err
			}
			return h.followLedger(ctx, *d.ContactID, p.To)
		}
	}
	return nil
}

// optedOutAtTwilio records the opt-out Twilio's 21610 reports, as of the
// message's acceptance: recording it again changes nothing, and an opt-in
// received since is never undone by it.
func (h *Handle) optedOutAtTwilio(ctx context.Context, d *messageDoc) error {
	p, err := h.open(d)
	if err != nil {
		return err
	}
	return h.recordOptOut(ctx, p.To, true, "twilio:21610", orderKey(d.CreatedAt, d.ID))
}

// Inbound stores a signed inbound message once per MessageSid (its id is
// derived from it), links it to the contact with that phone, records an
// opt-out or opt-in keyword for the whole customer and moves the contact's
// consent along, and puts it on the contact's timeline. A retry of the same
// callback finds the message stored and changes nothing more.
func (s *Service) Inbound(ctx context.Context, w Webhook) error {
	acct, ok, err := s.account(ctx, w)
	if err != nil || !ok {
		return err
	}
	sid := w.Params["MessageSid"]
	if sid == "" {
		sid = w.Params["SmsSid"]
	}
	if sid == "" {
		return switchboard.Invalid("MessageSid", "is required")
	}
	h, err := s.OpenVerified(ctx, acct.CustomerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	return h.inbound(ctx, sid, w.Params)
}

func (h *Handle) inbound(ctx context.Context, sid string, params map[string]string) error {
	id := h.s.derivedID("inbound", h.customerID, sid)
	from, to := params["From"], params["To"]
	if n, ok := switchboard.NormalizePhone(from, ""); ok {
		from = n
	}
	if n, ok := switchboard.NormalizePhone(to, ""); ok {
		to = n
	}
	body := params["Body"]
	var media []string
	if n, err := strconv.Atoi(params["NumMedia"]); err == nil {
		for i := 0; i < n && i < maxMedia; i++ {
			if u := params["MediaUrl"+strconv.Itoa(i)]; u != "" {
				media = append(media, u)
			}
		}
	}
	// Who sent it, and what it says. A retry of the callback does this
	// again and then finds the message stored.
	cid, err := h.contacts.FindByPhone(ctx, from)
	if err != nil {
		return err
	}
	now := h.s.now()
	d := &messageDoc{ID: id, Version: 1, Direction: Inbound, Status: StatusReceived,
		PartyIdx: [][]byte{h.phoneIdx(from), h.phoneIdx(to)}, TwilioSID: &sid,
		CreatedAt: now, UpdatedAt: now}
	if cid != "" {
		d.ContactID = &cid
	}
	if k := keyword(body); k != "" {
		d.Keyword = &k
	}
	segs := 1
	if n, err := strconv.Atoi(params["NumSegments"]); err == nil && n > 0 {
		segs = n
	}
	d.Segments = &segs
	if err := h.seal(d, &payload{From: from, To: to, Body: &body, MediaURLs: media}); err != nil {
		return err
	}
	// The message first (its id is derived from the MessageSid: a retry
	// finds it stored and goes on with what was stored).
	if err := h.docs.Insert(ctx, d.ID, d); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("store inbound message: %w", err)
		}
		if d, err = h.docs.Get(ctx, id); err != nil {
			return err
		}
	}
	// Then, side by side, its timeline item (keyed by the message) and a
	// look at its contact: one deleted or anonymized while this message was
	// on its way keeps none of it (its erasure redacts what it finds once it
	// is done; this redacts what it could not find yet).
	var g errgroup.Group
	var gone bool
	if d.ContactID != nil && d.RedactedAt == nil {
		g.Go(func() error { return h.timelineItem(ctx, d) })
		g.Go(func() error {
			c, err := h.contacts.Get(ctx, *d.ContactID)
			gone = errors.Is(err, contacts.ErrNotFound) || (err == nil && c.Anonymized)
			if gone {
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if gone {
		if _, err := h.Redact(ctx, d.ID); err != nil {
			return err
		}
	}
	// What follows is idempotent, so a retry after a crash completes it.
	// A keyword moves the opt-out ledger as of the message (a retry, or a
	// keyword older than the last one recorded, changes nothing) and the
	// contact's consent follows the ledger.
	if k := deref(d.Keyword); isOptOut(k) || isOptIn(k) {
		if err := h.recordOptOut(ctx, from, isOptOut(k), "sms:"+k, orderKey(d.CreatedAt, d.ID)); err != nil {
			return err
		}
		if d.ContactID != nil {
			if err := h.followLedger(ctx, *d.ContactID, from); err != nil {
				return err
			}
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
