package messages

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
)

// Job kinds of the outbox.
const (
	jobSend   = "send"
	jobRedact = "redact"
)

// job is one piece of work of the sender: hand a message to Twilio, or
// erase Twilio's copy of it.
type job struct {
	kind, customerID, messageID string
}

func (j job) id() string { return j.kind + ":" + j.customerID + ":" + j.messageID }

// pointerDoc is a job in the control database's outbox: ids only, no
// personal data. It stays until the job is settled, so a restart finds
// every job without looking into any customer's database.
type pointerDoc struct {
	ID         string    `bson:"_id"`
	Kind       string    `bson:"kind"`
	CustomerID string    `bson:"customerId"`
	MessageID  string    `bson:"messageId"`
	At         time.Time `bson:"at"`
	Due        time.Time `bson:"due"`
}

// point writes a job's pointer (writing it again is harmless).
func (s *Service) point(ctx context.Context, j job) error {
	now := s.now()
	p := pointerDoc{ID: j.id(), Kind: j.kind, CustomerID: j.customerID, MessageID: j.messageID, At: now, Due: now}
	_, err := s.control(outboxColl).InsertOne(ctx, p)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// handOff tells this process's sender about a job at once; a full queue
// leaves it to the sender's next look at the outbox.
func (s *Service) handOff(j job) {
	select {
	case s.wake <- j:
	default:
	}
}

// SenderOptions tune Run.
type SenderOptions struct {
	// Workers is how many jobs run at once (default 8).
	Workers int
	// Poll is how often the outbox is read for due jobs (default 1 s).
	Poll time.Duration
}

// Run is the sender: it works off the outbox until ctx ends, jobs handed
// off by this process at once, the others (a restart, another process's,
// a retry) when due. Several processes may run it: a message is sent only
// by the holder of its attempt. Send jobs of one customer run in batches
// (sendBatch).
func (s *Service) Run(ctx context.Context, opts SenderOptions) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	work := make(chan []job)
	var busy sync.Map // job id → struct{}: one run of a job at a time here
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				s.runBatch(ctx, batch)
				for _, j := range batch {
					busy.Delete(j.id())
				}
			}
		}()
	}
	// dispatch hands jobs to the workers: send jobs of one customer
	// together, up to maxBatch, every other job on its own.
	dispatch := func(jobs []job) bool {
		groups := map[string][]job{}
		var order []string
		for _, j := range jobs {
			if _, running := busy.LoadOrStore(j.id(), struct{}{}); running {
				continue
			}
			key := j.id()
			if j.kind == jobSend {
				key = "send:" + j.customerID
			}
			if len(groups[key]) == 0 {
				order = append(order, key)
			}
			groups[key] = append(groups[key], j)
		}
		for _, key := range order {
			g := groups[key]
			for len(g) > 0 {
				n := min(len(g), maxBatch)
				select {
				case work <- g[:n]:
				case <-ctx.Done():
					return false
				}
				g = g[n:]
			}
		}
		return true
	}
	tick := time.NewTicker(opts.Poll)
	defer func() {
		tick.Stop()
		close(work)
		wg.Wait()
	}()
	scan := func() bool {
		due, err := s.dueJobs(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("read outbox", "err", err)
		}
		return dispatch(due)
	}
	if !scan() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.wake:
			// Whatever else was handed off meanwhile goes along.
			jobs := []job{j}
		more:
			for len(jobs) < maxBatch {
				select {
				case j := <-s.wake:
					jobs = append(jobs, j)
				default:
					break more
				}
			}
			if !dispatch(jobs) {
				return
			}
		case <-tick.C:
			if !scan() {
				return
			}
		}
	}
}

// dueJobs reads the outbox's due pointers (the outbox holds only unsettled
// jobs, so this stays as small as the work to do).
func (s *Service) dueJobs(ctx context.Context) ([]job, error) {
	cur, err := s.control(outboxColl).Find(ctx, bson.D{{Key: "due", Value: bson.D{{Key: "$lte", Value: s.now()}}}},
		options.Find().SetLimit(1000))
	if err != nil {
		return nil, err
	}
	var ps []pointerDoc
	if err := cur.All(ctx, &ps); err != nil {
		return nil, err
	}
	out := make([]job, len(ps))
	for i, p := range ps {
		out[i] = job{kind: p.Kind, customerID: p.CustomerID, messageID: p.MessageID}
	}
	return out, nil
}

// runBatch runs jobs (send jobs of one customer, or a single job) and
// settles their pointers: gone when done, due again later when not.
func (s *Service) runBatch(ctx context.Context, jobs []job) {
	var waits []time.Duration
	if len(jobs) > 1 {
		waits = s.sendBatch(ctx, jobs[0].customerID, jobs)
	} else {
		j := jobs[0]
		var after time.Duration
		var err error
		switch j.kind {
		case jobSend:
			after, err = s.send(ctx, j)
		case jobRedact:
			after, err = s.redactAtTwilio(ctx, j)
		case jobConfirm:
			after, err = s.confirmOptIn(ctx, j)
		}
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("outbox job failed; retrying", "kind", j.kind, "customerId", j.customerID, "messageId", j.messageID, "err", err)
			if after == 0 {
				after = 5 * time.Second
			}
		}
		waits = []time.Duration{after}
	}
	if ctx.Err() != nil {
		return // the pointers stay: the next run finds them
	}
	coll := s.control(outboxColl)
	var done bson.A
	var later []mongo.WriteModel
	for i, j := range jobs {
		if waits[i] == 0 {
			done = append(done, j.id())
			continue
		}
		// When to look again is a hint for the senders, written by them
		// alone: the last one written wins, which is any of them.
		later = append(later, mongo.NewUpdateOneModel().SetFilter(idFilter(j.id())).
			SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "due", Value: s.now().Add(waits[i])}}}}))
	}
	if len(later) > 0 {
		if _, err := coll.BulkWrite(ctx, later, options.BulkWrite().SetOrdered(false)); err != nil {
			s.cfg.Logger.Error("reschedule outbox jobs", "err", err)
		}
	}
	switch len(done) {
	case 0:
	case 1:
		if _, err := coll.DeleteOne(ctx, idFilter(done[0].(string))); err != nil {
			s.cfg.Logger.Error("settle outbox job", "err", err)
		}
	default:
		if _, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: done}}}}); err != nil {
			s.cfg.Logger.Error("settle outbox jobs", "err", err)
		}
	}
}

// openFor opens a job's customer for the sender: nil when its data can no
// longer be read (the job is then void).
func (s *Service) openFor(ctx context.Context, customerID string) (*Handle, tenants.MessagingAccount, error) {
	acct, err := s.accountOf(ctx, customerID)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil, acct, nil
	}
	if err != nil {
		return nil, acct, err
	}
	if acct.Status == tenants.StatusShredded {
		return nil, acct, nil
	}
	h, err := s.OpenVerified(ctx, customerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil, acct, nil
	}
	return h, acct, err
}

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
	tm, err := s.create(ctx, acct.AccountSID, d, a.p)
	return s.settle(ctx, h, j, d, tm, err)
}

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
		var p pointerDoc
		if perr := s.control(outboxColl).FindOne(ctx, idFilter(j.id())).Decode(&p); perr == nil && s.now().Sub(p.At) < pointerGrace {
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
	fail := func(why string) (*attempt, time.Duration, error) {
		_, err := h.apply(ctx, d.ID, d.Version, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
			nxt, np := *cur, *p
			nxt.Status, nxt.TwilioRedacted, np.ErrorMessage = StatusFailed, true, &why
			return &nxt, &np, nil
		})
		wait, err := retryOnConflict(err)
		return nil, wait, err
	}
	if d.RedactedAt != nil && d.AttemptAt == nil {
		return fail("redacted before it was sent")
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
			return fail("redacted before it was sent")
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
		return fail("the recipient opted out after the message was accepted; nothing was sent")
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

// sameBody reports whether Twilio's body is the message's: by its
// fingerprint, which outlives a redaction (a message redacted while its
// attempt was unsettled is still found at Twilio, to be erased there).
func (h *Handle) sameBody(d *messageDoc, p *payload, body string) bool {
	if d.BodyIdx != nil {
		return string(h.bodyIdx(body)) == string(d.BodyIdx)
	}
	return p.Body != nil && *p.Body == body
}
