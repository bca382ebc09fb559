package messages

import (
	"context"
	"time"
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
	// No DateSent filter: a message Twilio created but has not sent yet has
	// no date_sent, and it is exactly the one to find.
	list, err := h.s.cfg.Twilio.ListMessages(ctx, accountSID, ListFilter{To: p.To, From: p.From})
	if err != nil {
		return false, err
	}
	// The attempt called Twilio within its window (a third of the lease),
	// so its message, if any, was created before the lease's half (Twilio
	// counts whole seconds, hence the skew). Another message of the same
	// text still on its way was claimed at most a window ago, so it was
	// created after that: it is never taken for this one.
	from, until := start.Add(-clockSkew), start.Add(h.s.cfg.AttemptLease/2-clockSkew)
	for _, m := range list {
		if !h.sameBody(d, p, m.Body) || m.DateCreated.Before(from) || !m.DateCreated.Before(until) {
			continue
		}
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
