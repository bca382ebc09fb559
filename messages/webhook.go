package messages

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/tenants"
)

// StatusCallback applies a signed status callback for message mid (from
// the callback URL; when absent, the message that registered MessageSid).
// An unknown message, or one whose Twilio SID is another, changes nothing.
func (s *Service) StatusCallback(ctx context.Context, w Webhook, mid string) error {
	acct, params, ok, err := s.account(ctx, w)
	if err != nil || !ok {
		return err
	}
	h, err := s.Open(ctx, acct.CustomerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	sid := messageSID(params)
	if mid == "" && sid != "" {
		if mid, err = h.sidOwner(ctx, sid); err != nil {
			return err
		}
	}
	if mid == "" {
		return nil
	}
	tw := params["MessageStatus"]
	if tw == "" {
		tw = params["SmsStatus"]
	}
	code, _ := strconv.Atoi(params["ErrorCode"])
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
		if d.RedactedAt != nil && !d.TwilioRedacted {
			// Redacted before its SID was known: erase Twilio's copy now.
			j := job{kind: jobRedact, customerID: h.customerID, messageID: mid}
			if err := s.point(ctx, j); err != nil {
				return err
			}
			s.handOff(j)
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
// opt-out keyword for the whole customer and moves the contact's consent
// along, and puts it on the contact's timeline. An opt-in keyword takes
// effect only once Twilio confirms the message (a confirm job of the
// outbox: see confirmOptIn). A retry of the same callback finds the message
// stored and changes nothing more.
func (s *Service) Inbound(ctx context.Context, w Webhook) error {
	acct, params, ok, err := s.account(ctx, w)
	if err != nil || !ok {
		return err
	}
	sid := messageSID(params)
	if sid == "" {
		return switchboard.Invalid("MessageSid", "is required")
	}
	h, err := s.Open(ctx, acct.CustomerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil
	}
	if err != nil {
		return err
	}
	return h.inbound(ctx, sid, params)
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
	// An opt-in waits for Twilio's word: its confirm job is written before
	// the message, so a crash between the two leaves a job that finds no
	// message (and ends) rather than a message nobody confirms.
	confirm := job{kind: jobConfirm, customerID: h.customerID, messageID: id}
	if isOptIn(switchboard.Deref(d.Keyword)) {
		if err := h.s.point(ctx, confirm); err != nil {
			return err
		}
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
	// An opt-out keyword moves the opt-out ledger as of the message (a
	// retry, or a keyword older than the last one recorded, changes
	// nothing) and the contact's consent follows the ledger. An opt-in
	// keyword is left to its confirm job, handed to the sender now.
	switch k := switchboard.Deref(d.Keyword); {
	case isOptOut(k):
		return h.applyKeyword(ctx, d, from)
	case isOptIn(k):
		h.s.handOff(confirm)
	}
	return nil
}

// applyKeyword moves the opt-out ledger of from by the keyword of inbound
// message d, as of d, and the consent of d's contact along.
func (h *Handle) applyKeyword(ctx context.Context, d *messageDoc, from string) error {
	k := switchboard.Deref(d.Keyword)
	if err := h.recordOptOut(ctx, from, isOptOut(k), "sms:"+k, orderKey(d.CreatedAt, d.ID)); err != nil {
		return err
	}
	if d.ContactID != nil {
		return h.followLedger(ctx, *d.ContactID, from)
	}
	return nil
}
