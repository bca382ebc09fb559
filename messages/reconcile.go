package messages

import (
	"context"
	"time"
)

// reconcileBefore and reconcileAfter bound, around an attempt's start,
// the messages reconcile asks Twilio for.
const (
	reconcileBefore = time.Minute
	reconcileAfter  = 24 * time.Hour
)

// clockSkew is how far Twilio's clock (which counts whole seconds) may be
// from ours when matching a message Twilio created to an attempt.
const clockSkew = time.Second

// reconcile settles an attempt that never ended: a message Twilio created
// for it (to, from and body alike, created while the attempt ran, and no
// other message's) is adopted; otherwise nothing was sent and the caller
// may try again. It reports whether it adopted one.
func (h *Handle) reconcile(ctx context.Context, accountSID string, d *messageDoc) (bool, error) {
	if d.TwilioSID != nil {
		_, err := h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, _ *payload) (*messageDoc, *payload, error) {
			nxt := *cur
			nxt.AttemptAt = nil
			if nxt.Status == StatusAccepted {
				nxt.Status = StatusSending
			}
			return &nxt, nil, nil
		})
		return err == nil, err
	}
	p, err := h.open(d)
	if err != nil {
		return false, err
	}
	start := *d.AttemptAt
	// The attempt called Twilio within its window (a third of the lease),
	// so its message, if any, was created before the lease's half (Twilio
	// counts whole seconds, hence the skew). Another message of the same
	// text still on its way was claimed at most a window ago, so it was
	// created after that: it is never taken for this one.
	from, until := start.Add(-clockSkew), start.Add(h.s.cfg.AttemptLease/2-clockSkew)
	var found []TwilioMessage // a few at most: the same text within the window
	pick := func(m TwilioMessage) bool {
		if h.sameBody(d, p, m.Body) && !m.DateCreated.Before(from) && m.DateCreated.Before(until) {
			found = append(found, m)
		}
		return true
	}
	// First what Twilio sent from a minute before the attempt to a day
	// after it (DateSent bounds, paged): the message, if sent by now,
	// is there, and the rest of the history between the two numbers is
	// never read.
	tw := h.s.cfg.Twilio
	f := ListFilter{To: p.To, From: p.From, SentAfter: start.Add(-reconcileBefore), SentBefore: start.Add(reconcileAfter)}
	if err := tw.ListMessages(ctx, accountSID, f, pick); err != nil {
		return false, err
	}
	if len(found) == 0 {
		// A message Twilio created but has not sent yet has no date_sent:
		// no DateSent bound finds it. Newest first, up to the first
		// message created before the attempt's minute.
		err := tw.ListMessages(ctx, accountSID, ListFilter{To: p.To, From: p.From}, func(m TwilioMessage) bool {
			if m.DateCreated.Before(start.Add(-reconcileBefore)) {
				return false
			}
			return pick(m)
		})
		if err != nil {
			return false, err
		}
	}
	for _, m := range found {
		mine, err := h.registerSID(ctx, m.SID, d.ID)
		if err != nil {
			return false, err
		}
		if !mine {
			continue
		}
		_, err = h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
			nxt, np := advanced(cur, p, m.Status, m.ErrorCode, m.ErrorMessage, m.SID, h.s.now())
			if nxt == nil {
				c := *cur
				nxt = &c
			}
			nxt.AttemptAt = nil
			if nxt.Status == StatusAccepted {
				nxt.Status = StatusSending
			}
			return nxt, np, nil
		})
		return err == nil, err
	}
	return false, nil
}

// sameBody reports whether Twilio's body is the message's: by its
// fingerprint, which outlives a redaction (a message redacted while its
// attempt was unsettled is still found at Twilio, to be erased there).
func (h *Handle) sameBody(d *messageDoc, p *payload, body string) bool {
	if d.BodyIdx != nil {
		return string(h.bodyIdx(body)) == string(d.BodyIdx)
	}
	return p.Body != nil && *p.Body == body
}
