package messages

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
)

// pointerGrace is how long a pointer may wait for its message: the two are
// written at once, and the message's insert may still be on its way.
const pointerGrace = time.Minute

// attempt is a message ready for a send attempt: next is its state with
// the attempt claimed (not yet stored), p its opened payload.
type attempt struct {
	j    job
	prev *messageDoc // the state judged, next's predecessor
	next *messageDoc
	p    *payload
}

// send runs a send job. It returns how long to wait before running it
// again (0: settled).
func (s *Service) send(ctx context.Context, j job) (time.Duration, error) {
	h, acct, err := s.openFor(ctx, j.customerID)
	if err != nil || h == nil {
		return 0, err
	}
	a, wait, err := s.prepare(ctx, h, acct, j)
	if a == nil {
		return wait, err
	}
	// Claim the attempt: of racing senders, one gets the version.
	d, err := h.apply(ctx, a.next.ID, a.next.Version-1, func(*messageDoc, *payload) (*messageDoc, *payload, error) {
		return a.next, nil, nil
	})
	if err != nil {
		return retryOnConflict(err)
	}
	if err := h.timelineItem(ctx, d); err != nil {
		return time.Second, err
	}
	if ok, wait, err := h.cleared(ctx, d); !ok {
		return wait, err
	}
	tm, err := s.create(ctx, acct.AccountSID, d, a.p)
	return s.settle(ctx, h, j, d, tm, err)
}

// Why a message failed before it reached Twilio.
const (
	whyRedacted = "redacted before it was sent"
	whyOptedOut = "the recipient opted out after the message was accepted; nothing was sent"
)

// unsent is cur failed before anything reached Twilio (code 0: no error
// code): its attempt over, Twilio holding no copy to erase.
func unsent(cur *messageDoc, p *payload, code int, why string) (*messageDoc, *payload) {
	nxt, np := *cur, *p
	nxt.Status, nxt.AttemptAt, nxt.TwilioRedacted, np.ErrorMessage = StatusFailed, nil, true, &why
	if code != 0 {
		c := code
		nxt.ErrorCode = &c
	}
	return &nxt, &np
}

// cleared judges a claimed attempt (d, as claimed) again right before its
// Twilio create, since the judgement that claimed it may be a batch old:
// the message must still be this attempt's, not redacted, and its
// recipient not opted out. A redaction or an opt-out recorded since ends
// the message failed (an opt-out with 21610) through the claim of its next
// version, and nothing is sent. ok says the create may go ahead; else wait
// is when to run the job again (0: settled).
//
// An opt-out is a claim on the ledger: one whose claim stands before this
// read is seen here and stops the message; one claimed after it comes
// after the create, and the message ends as Twilio says.
func (h *Handle) cleared(ctx context.Context, d *messageDoc) (ok bool, wait time.Duration, err error) {
	if hold := h.s.holdBeforeCheck; hold != nil {
		hold(d.ID)
	}
	cur := d
	for range maxRejudge {
		// One claim read when nothing came after the attempt's claim.
		if cur, err = h.docs.Settle(ctx, d.ID, cur); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return false, 0, nil
			}
			return false, time.Second, err
		}
		if cur.Attempt != d.Attempt || cur.AttemptAt == nil || !cur.AttemptAt.Equal(*d.AttemptAt) ||
			cur.Status != StatusAccepted || cur.TwilioSID != nil {
			return false, 100 * time.Millisecond, nil // no longer this attempt's: judge it again
		}
		code, why := 0, whyRedacted
		if cur.RedactedAt == nil {
			p, err := h.open(cur)
			if err != nil {
				return false, time.Second, err
			}
			out, err := h.optOut(ctx, p.To)
			if err != nil {
				return false, time.Second, err
			}
			if !out.OptedOut {
				return true, 0, nil
			}
			code, why = CodeOptedOut, whyOptedOut
		}
		_, err = h.apply(ctx, d.ID, cur.Version, func(c *messageDoc, p *payload) (*messageDoc, *payload, error) {
			nxt, np := unsent(c, p, code, why)
			return nxt, np, nil
		})
		if err == nil {
			return false, 0, nil
		}
		if !isConflict(err) {
			return false, time.Second, err
		}
		// Another change came between (a redaction): judge the latest.
	}
	return false, 100 * time.Millisecond, nil
}

// maxRejudge bounds the pre-create judgements of one attempt that keep
// losing to other writers.
const maxRejudge = 10

// prepare judges a send job's message: nil (and when to look again) when
// no attempt is due, else the attempt to claim. It settles what needs no
// Twilio call on the way: a message redacted, or of a customer terminated,
// before it was sent fails; an attempt that never ended is reconciled; an
// opt-out that came after the message was accepted stops it; a contact
// with the recipient's phone is linked.
func (s *Service) prepare(ctx context.Context, h *Handle, acct tenants.MessagingAccount, j job) (*attempt, time.Duration, error) {
	// The cached document is enough: a claim ahead of it (a change being
	// applied, or a crash's) makes the attempt's claim lose, and the job
	// is judged again.
	d, err := h.docs.Get(ctx, j.messageID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, 0, err
		}
		if s.pointerYoung(ctx, j) {
			return nil, time.Second, nil
		}
		return nil, 0, nil
	}
	if d.Direction != Outbound {
		return nil, 0, nil
	}
	if d.Status != StatusAccepted {
		return nil, 0, h.timelineItem(ctx, d)
	}
	now := s.now()
	failCode := func(code int, why string) (*attempt, time.Duration, error) {
		_, err := h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
			nxt, np := unsent(cur, p, code, why)
			return nxt, np, nil
		})
		wait, err := retryOnConflict(err)
		return nil, wait, err
	}
	fail := func(why string) (*attempt, time.Duration, error) { return failCode(0, why) }
	if d.RedactedAt != nil && d.AttemptAt == nil {
		return fail(whyRedacted)
	}
	switch acct.Status {
	case tenants.StatusActive:
	case tenants.StatusDeactivated:
		return nil, 30 * time.Second, nil // the sub-account is suspended: no traffic
	default:
		return fail("the customer was terminated before the message was sent")
	}
	if d.RetryAt != nil && now.Before(*d.RetryAt) {
		return nil, d.RetryAt.Sub(now), nil
	}
	if d.AttemptAt != nil {
		if left := d.AttemptAt.Add(s.cfg.AttemptLease).Sub(now); left > 0 {
			return nil, left, nil // an attempt may still be running
		}
		adopted, err := h.reconcile(ctx, acct.AccountSID, d)
		if err != nil || adopted {
			wait, err := retryOnConflict(err)
			return nil, wait, err
		}
		// Twilio has no message of the dead attempt. The next attempt is
		// claimed from the version judged here: if another sender judged
		// it too and claimed first, this claim loses.
		if d.RedactedAt != nil {
			return fail(whyRedacted)
		}
	}
	p, err := h.open(d)
	if err != nil {
		return nil, 0, err
	}
	var (
		g   errgroup.Group
		out OptOut
		cid string
	)
	g.Go(func() (err error) {
		out, err = h.optOut(ctx, p.To)
		return err
	})
	if d.ContactID == nil && d.Attempt == 0 {
		g.Go(func() (err error) {
			cid, err = h.contacts.FindByPhoneOnly(ctx, p.To)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, time.Second, err
	}
	if out.OptedOut {
		return failCode(CodeOptedOut, whyOptedOut)
	}
	nxt := *d
	nxt.Version++
	nxt.UpdatedAt = now
	nxt.Attempt++
	nxt.AttemptAt, nxt.RetryAt = &now, nil
	if cid != "" {
		nxt.ContactID = &cid
	}
	return &attempt{j: j, prev: d, next: &nxt, p: p}, 0, nil
}

// errNotAttempted: the attempt's window passed before Twilio was called, so
// Twilio has nothing of it.
var errNotAttempted = errors.New("send attempt not made: its window passed")

// attemptWindow is how long after its claim an attempt may call Twilio
// (the call included): a third of the lease, so that by the time the
// lease ends and another sender reconciles, no call of this attempt can
// still be on its way, and Twilio's message of it, if any, was created
// within the first half of the lease (see reconcile).
func (s *Service) attemptWindow() time.Duration { return s.cfg.AttemptLease / 3 }

// create hands a message to Twilio, within its attempt's window.
func (s *Service) create(ctx context.Context, accountSID string, d *messageDoc, p *payload) (TwilioMessage, error) {
	deadline := d.AttemptAt.Add(s.attemptWindow())
	if !s.cfg.Now().Before(deadline) {
		return TwilioMessage{}, errNotAttempted
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	body := ""
	if p.Body != nil {
		body = *p.Body
	}
	return s.cfg.Twilio.CreateMessage(ctx, accountSID, Send{From: p.From, To: p.To, Body: body, MediaURLs: p.MediaURLs,
		StatusCallback: s.cfg.PublicURL + StatusPath + "?mid=" + d.ID})
}

// sentState is d once Twilio accepted it as tm: its SID learnt, its
// status moved on (at least sending), its attempt over.
func (s *Service) sentState(cur *messageDoc, p *payload, tm TwilioMessage) (*messageDoc, *payload) {
	nxt, np := advanced(cur, p, tm.Status, 0, "", tm.SID, s.now())
	if nxt == nil {
		c := *cur
		nxt = &c
	}
	if tm.Segments > 0 && nxt.Segments == nil {
		n := tm.Segments
		nxt.Segments = &n
	}
	nxt.AttemptAt = nil
	if nxt.Status == StatusAccepted {
		nxt.Status = StatusSending
	}
	return nxt, np
}

// settle records Twilio's answer to an attempt on message d.
func (s *Service) settle(ctx context.Context, h *Handle, j job, d *messageDoc, tm TwilioMessage, err error) (time.Duration, error) {
	var te *TwilioError
	switch {
	case errors.Is(err, errNotAttempted):
		// Nothing reached Twilio: the attempt is over, the next may start.
		_, err := h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, _ *payload) (*messageDoc, *payload, error) {
			nxt := *cur
			nxt.AttemptAt = nil
			return &nxt, nil, nil
		})
		if err != nil {
			return s.cfg.AttemptLease, nil // judged again once the attempt counts as dead
		}
		return 100 * time.Millisecond, nil
	case err == nil:
		if _, err := h.registerSID(ctx, tm.SID, d.ID); err != nil {
			return time.Second, err
		}
		_, err = h.apply(ctx, d.ID, 0, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
			nxt, np := s.sentState(cur, p, tm)
			return nxt, np, nil
		})
		return 0, err
	case errors.As(err, &te):
		if te.Code == CodeOptedOut {
			// The opt-out first: a stop after the message failed must not
			// lose it (the job is settled once the message failed).
			if err := h.optedOutAtTwilio(ctx, d); err != nil {
				return time.Second, err
			}
		}
		d, err := h.apply(ctx, d.ID, 0, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
			if cur.Status != StatusAccepted {
				return nil, nil, nil
			}
			nxt, np := *cur, *p
			nxt.Status, nxt.AttemptAt, nxt.TwilioRedacted = StatusFailed, nil, true
			c, m := te.Code, te.Message
			nxt.ErrorCode, np.ErrorMessage = &c, &m
			return &nxt, &np, nil
		})
		if err != nil {
			return time.Second, err
		}
		if te.Code == CodeOptedOut && d.ContactID != nil {
			p, err := h.open(d)
			if err != nil {
				return time.Second, err
			}
			return 0, h.followLedger(ctx, *d.ContactID, p.To)
		}
		return 0, nil
	case errors.Is(err, ErrTwilioRateLimited):
		wait := backoff(s.cfg.RetryBase, d.Attempt)
		_, err := h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, _ *payload) (*messageDoc, *payload, error) {
			nxt := *cur
			at := s.now().Add(wait)
			nxt.AttemptAt, nxt.RetryAt = nil, &at
			return &nxt, nil, nil
		})
		if err != nil {
			return s.cfg.AttemptLease, nil // judged again once the attempt counts as dead
		}
		return wait, nil
	default:
		// No answer: Twilio may have the message. The attempt stays
		// open until its lease runs out; then reconcile decides.
		s.cfg.Logger.Warn("send: no answer from Twilio; reconciling before any resend", "customerId", j.customerID, "messageId", d.ID, "err", err)
		return s.cfg.AttemptLease, nil
	}
}

// backoff is the wait after the n-th attempt that Twilio refused with 429:
// base, doubling, at most a minute.
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// retryOnConflict: another writer moved the message meanwhile; judge it
// again shortly.
func retryOnConflict(err error) (time.Duration, error) {
	if err == nil {
		return 0, nil
	}
	if isConflict(err) {
		return 100 * time.Millisecond, nil
	}
	return time.Second, err
}

// timelineItem puts a message on its contact's timeline
// (message.inbound or message.outbound, by its direction).
func (h *Handle) timelineItem(ctx context.Context, d *messageDoc) error {
	if d.ContactID == nil {
		return nil
	}
	typ := contacts.ItemOutbound
	if d.Direction == Inbound {
		typ = contacts.ItemInbound
	}
	err := h.contacts.AddMessageItem(ctx, *d.ContactID, timelineItemID(h.s, d.ID), typ, d.ID, d.CreatedAt)
	if errors.Is(err, contacts.ErrNotFound) {
		return nil
	}
	return err
}
