package messages

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
)

// jobConfirm is the outbox job that asks Twilio whether an inbound opt-in
// (START, YES, UNSTOP) is a message it delivered, and only then applies it.
const jobConfirm = "confirm"

// confirmOptIn runs a confirm job. The inbound message named by the job
// was stored when its callback came; its opt-in takes effect only once the
// customer's sub-account at Twilio holds that message, inbound and from the
// same number, so that a signed callback carrying a SID Twilio never gave
// (a replay re-cut into a new MessageSid, say) opts nobody in. While Twilio
// cannot answer (no answer, 5xx, 429) the job is tried again later; an
// answer that denies the message (404, a refusal, another message) ends it
// with the opt-in not applied. It returns how long to wait before running
// it again (0: settled).
func (s *Service) confirmOptIn(ctx context.Context, j job) (time.Duration, error) {
	h, acct, err := s.openFor(ctx, j.customerID)
	if err != nil || h == nil {
		return 0, err
	}
	if acct.Status != tenants.StatusActive && acct.Status != tenants.StatusDeactivated {
		return 0, nil // like its callback would now: nothing changes
	}
	d, err := h.docs.Get(ctx, j.messageID)
	if errors.Is(err, store.ErrNotFound) {
		// The job is written just before its message: one whose message
		// is still on its way waits for it a little.
		if s.pointerYoung(ctx, j) {
			return time.Second, nil
		}
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if d.Direction != Inbound || d.TwilioSID == nil || !isOptIn(switchboard.Deref(d.Keyword)) {
		return 0, nil
	}
	p, err := h.open(d)
	if err != nil {
		return 0, err
	}
	tm, err := s.cfg.Twilio.FetchMessage(ctx, acct.AccountSID, *d.TwilioSID)
	switch {
	case errors.Is(err, ErrTwilioRateLimited), errors.Is(err, tenants.ErrUpstreamUnavailable):
		return s.cfg.RetryBase, err
	case err != nil:
		// 404 or a refusal: Twilio does not know this message.
		s.cfg.Logger.Warn("inbound opt-in not confirmed by Twilio: not applied", "customerId", j.customerID, "messageId", j.messageID,
			"twilioCode", TwilioCode(err), "notFound", errors.Is(err, ErrTwilioNotFound))
		return 0, nil
	}
	if !confirms(tm, acct.AccountSID, *d.TwilioSID, p.From) {
		s.cfg.Logger.Warn("inbound opt-in not confirmed by Twilio: not applied", "customerId", j.customerID, "messageId", j.messageID,
			"mismatch", true)
		return 0, nil
	}
	return 0, h.applyKeyword(ctx, d, p.From)
}

// confirms reports whether Twilio's message tm is the inbound message sid
// of sub-account accountSID from the number from. Twilio names the sender
// of every inbound message; a sender it does not name (the sandbox's
// messages made by another process) is not held against the message.
func confirms(tm TwilioMessage, accountSID, sid, from string) bool {
	if tm.SID != sid || tm.AccountSID != accountSID || !strings.HasPrefix(tm.Direction, "inbound") {
		return false
	}
	if tm.From == "" {
		return true
	}
	if n, ok := switchboard.NormalizePhone(tm.From, ""); ok {
		return n == from
	}
	return tm.From == from
}
