package messages

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
)

// Keywords, as API.md lists them: a body that is one of them alone, after
// trimming and ignoring case.
var (
	optOutKeywords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
	optInKeywords  = []string{"START", "YES", "UNSTOP"}
	helpKeywords   = []string{"HELP", "INFO"}
)

// keyword returns the keyword a body is, or "".
func keyword(body string) string {
	k := strings.ToUpper(strings.TrimSpace(body))
	for _, list := range [][]string{optOutKeywords, optInKeywords, helpKeywords} {
		for _, w := range list {
			if k == w {
				return w
			}
		}
	}
	return ""
}

func isOptOut(k string) bool { return k != "" && contains(optOutKeywords, k) }
func isOptIn(k string) bool  { return k != "" && contains(optInKeywords, k) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// optOutID keys a number's opt-out: its blind index.
func (h *Handle) optOutID(e164 string) string { return hex.EncodeToString(h.phoneIdx(e164)) }

// optOut returns the opt-out state of a normalised number.
func (h *Handle) optOut(ctx context.Context, e164 string) (OptOut, error) {
	out := OptOut{Phone: e164}
	id := h.optOutID(e164)
	// Version 1 is the document's own insert: no document, no opt-out
	// ever (one read). Else a change may be claimed and not yet applied:
	// the claims decide.
	var cur optOutDoc
	err := h.optOuts.Docs.FindID(ctx, id).Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return out, nil
	}
	if err != nil {
		return OptOut{}, fmt.Errorf("read opt-out: %w", err)
	}
	d, err := h.optOuts.Settle(ctx, id, &cur)
	if err != nil {
		return OptOut{}, fmt.Errorf("read opt-out: %w", err)
	}
	src, err := h.cipher.Open(optOutField(d.ID), d.Source)
	if err != nil {
		return OptOut{}, fmt.Errorf("open opt-out: %w", err)
	}
	s, at := string(src), d.UpdatedAt.UTC()
	out.OptedOut, out.Source, out.UpdatedAt = d.OptedOut, &s, &at
	return out, nil
}

// OptOut returns the opt-out state of a phone number (normalised first; a
// number that does not normalise is 422 naming phone).
func (h *Handle) OptOut(ctx context.Context, phone string) (OptOut, error) {
	n, ok := switchboard.NormalizePhone(phone, "")
	if !ok {
		return OptOut{}, switchboard.Invalid("phone", "must be a phone number in E.164 form")
	}
	return h.optOut(ctx, n)
}

// SetOptOut records an opt-out or opt-in of a phone number received some
// other way than by SMS (a call, a form), and moves the consent "sms" of
// the contact with that phone along. An opt-in over an opt-out the person
// texted is ErrOptedOutBySMS, and nothing changes: only the person lifts
// it, by texting START, YES or UNSTOP.
func (h *Handle) SetOptOut(ctx context.Context, phone string, optedOut bool, source string) (OptOut, error) {
	var errs []switchboard.FieldError
	n, ok := switchboard.NormalizePhone(phone, "")
	if !ok {
		errs = append(errs, switchboard.FieldError{Field: "phone", Message: "must be a phone number in E.164 form"})
	}
	source = strings.TrimSpace(source)
	if l := utf8.RuneCountInString(source); l < 1 || l > 200 {
		errs = append(errs, switchboard.FieldError{Field: "source", Message: "must be 1 to 200 characters"})
	} else if texted(strings.ToLower(source)) || strings.HasPrefix(strings.ToLower(source), "twilio:") {
		// The ledger tells a texted opt-out (and a double opt-in's
		// confirmation) by these prefixes: a PUT may not pass for one.
		errs = append(errs, switchboard.FieldError{Field: "source", Message: "must not begin with sms: or twilio: (they name what the person texted)"})
	}
	if len(errs) > 0 {
		return OptOut{}, &switchboard.ValidationError{Fields: errs}
	}
	if err := h.recordOptOut(ctx, n, optedOut, source, orderKey(h.s.now(), newID())); err != nil {
		return OptOut{}, err
	}
	if cid, err := h.contacts.FindByPhone(ctx, n); err != nil {
		return OptOut{}, err
	} else if cid != "" {
		if err := h.followLedger(ctx, cid, n); err != nil {
			return OptOut{}, err
		}
	}
	return h.optOut(ctx, n)
}

// texted reports whether an opt-out source is the person's own text: a
// keyword (sms:STOP) or Twilio's 21610 (the person texted STOP to Twilio,
// which refuses every message until they text START).
func texted(source string) bool {
	return strings.HasPrefix(source, "sms:") || source == sourceTwilioOptOut
}

// sourceTwilioOptOut is the source of an opt-out Twilio reported (21610).
const sourceTwilioOptOut = "twilio:21610"

// orderKey orders the events that move an opt-out (they can arrive out of
// order: a retried webhook, two keywords at once): the event's time, then
// an id that breaks ties. Keys compare as strings.
func orderKey(at time.Time, id string) string {
	return fmt.Sprintf("%013d:%s", at.UnixMilli(), id)
}

// followLedger brings the consent "sms" of contact cid in step with the
// opt-out ledger of its phone e164. Only a YES or START from the phone
// confirms a double opt-in; one recorded some other way never does.
//
// A writer that found the consent in step changed nothing, so nothing
// orders it after another writer's change made from an older ledger: each
// writer therefore looks again after its own step, and steps again until
// ledger and consent agree. The last writer to look leaves them agreeing.
func (h *Handle) followLedger(ctx context.Context, cid, e164 string) error {
	state := func(ctx context.Context) (contacts.SMSState, error) {
		o, err := h.optOut(ctx, e164)
		if err != nil {
			return contacts.SMSState{}, err
		}
		src := switchboard.Deref(o.Source)
		return contacts.SMSState{OptIn: !o.OptedOut, Confirms: src == "sms:YES" || src == "sms:START", Source: src}, nil
	}
	for range 20 {
		if err := h.contacts.SMSConsent(ctx, cid, state); err != nil {
			return err
		}
		st, err := state(ctx)
		if err != nil {
			return err
		}
		c, err := h.contacts.Get(ctx, cid)
		if errors.Is(err, contacts.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if contacts.InStep(c, st) {
			return nil
		}
	}
	return fmt.Errorf("sms consent of contact %s: the opt-out ledger keeps changing", cid)
}

// recordOptOut stores a number's opt-out state as of the event order
// (orderKey); an event older than the one recorded, or the same
// one again, changes nothing.
func (h *Handle) recordOptOut(ctx context.Context, e164 string, optedOut bool, source, order string) error {
	id := h.optOutID(e164)
	sealed, err := h.cipher.Seal(optOutField(id), []byte(source))
	if err != nil {
		return err
	}
	now := h.s.now()
	d := &optOutDoc{ID: id, Version: 1, OptedOut: optedOut, Source: sealed, UpdatedAt: now, Order: order}
	// The first change creates the document (its claim, then the
	// document); a number already known changes by a claim. Known means
	// its document is there: one written by the last release has no claim
	// of version 1, which Create would take as free.
	v := h.optOutsFor(e164)
	err = v.Docs.FindID(ctx, id).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		err = v.Create(ctx, id, d, struct{}{})
		if !errors.Is(err, store.ErrExists) {
			if err != nil {
				return fmt.Errorf("record opt-out: %w", err)
			}
			return nil
		}
	case err != nil:
		return fmt.Errorf("record opt-out: %w", err)
	}
	_, err = v.Update(ctx, id, store.AnyVersion, func(cur *optOutDoc) (*optOutDoc, struct{}, error) {
		// Judged on the state this change claims over: of a STOP and an
		// opt-in racing, the claim orders them, and the later one sees
		// the earlier.
		src, err := h.cipher.Open(optOutField(id), cur.Source)
		if err != nil {
			return nil, struct{}{}, fmt.Errorf("open opt-out: %w", err)
		}
		curTexted := texted(string(src))
		switch {
		case !optedOut && !texted(source) && cur.OptedOut && curTexted:
			return nil, struct{}{}, ErrOptedOutBySMS
		case optedOut && texted(source) && !cur.OptedOut && !curTexted:
			// An opt-in recorded some other way that did not see this
			// STOP (it came in while the STOP was on its way) could not
			// have lifted it: the STOP stands, whatever the order.
		case cur.Order >= order:
			return nil, struct{}{}, nil
		}
		nxt := *d
		nxt.Version = cur.Version + 1
		return &nxt, struct{}{}, nil
	}, store.UpdateOptions[optOutDoc]{})
	return err
}
