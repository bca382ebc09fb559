package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
)

const (
	// attemptTimeout is how long a receiver has to answer 2xx.
	attemptTimeout = 10 * time.Second
	// attemptLease is how long an attempt holds its delivery: past it,
	// an attempt whose process died is made again.
	attemptLease = attemptTimeout + 5*time.Second
	// tryFor is how long a delivery is retried before it is failed;
	// failingFor how long an endpoint may fail before it is disabled.
	tryFor     = 3 * 24 * time.Hour
	failingFor = 5 * 24 * time.Hour
	// perEndpoint bounds the attempts in flight to one endpoint in one
	// process, so a slow receiver holds back only its own deliveries.
	perEndpoint = 4
	// busyDelay is how far a delivery to a busy endpoint moves back.
	busyDelay = time.Second
)

// schedule is the wait before each retry (then every 12 h), scaled by
// RetryScale and given ±20% jitter.
var schedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}

func (s *Service) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * s.cfg.RetryScale)
}

// retryAfter is the wait after the n-th failed attempt (n ≥ 1).
func (s *Service) retryAfter(n int) time.Duration {
	d := 12 * time.Hour
	if n-1 < len(schedule) {
		d = schedule[n-1]
	}
	d = s.scaled(d)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Kinds of due work.
const (
	kindEvent    = "e" // fan a held event out
	kindDelivery = "d" // attempt a delivery
	kindExpire   = "x" // remove a finished delivery past keepFor
	kindEndpoint = "f" // disable an endpoint failing for failingFor
)

// dueDoc is one piece of work: its _id is "<TimeKey>/<kind>/<owner>/<id>",
// so the due list is the range below the TimeKey of now.
type dueDoc struct {
	ID string `bson:"_id"`
}

func dueKey(at time.Time, kind string, o Owner, id string) string {
	return store.TimeKey(at) + "/" + kind + "/" + o.key() + "/" + id
}

type due struct {
	key, kind, id string
	owner         Owner
	// lane, once set, is the endpoint lane whose slot this work holds (a
	// queued delivery resumed): it gives the slot back when it is done.
	lane string
}

func parseDue(key string) (due, bool) {
	parts := strings.SplitN(key, "/", 4)
	if len(parts) != 4 {
		return due{}, false
	}
	o, ok := ownerOf(parts[2])
	return due{key: key, kind: parts[1], owner: o, id: parts[3]}, ok
}

// poke tells this process's worker about work just written.
func (s *Service) poke(key string) {
	select {
	case s.wake <- key:
	default:
	}
}

func jsonBody(b body) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("event body: %w", err)
	}
	return raw, nil
}

// WorkerOptions tune Run.
type WorkerOptions struct {
	// Workers is how many pieces of work run at once (default 32).
	Workers int
	// Poll is how often the due list is read (default 1 s).
	Poll time.Duration
}

// Run is the delivery worker: it works off the due list until ctx ends,
// work this process wrote at once, the rest when due. Every serve process
// runs one; an attempt is made by the one that claims it.
func (s *Service) Run(ctx context.Context, opts WorkerOptions) {
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	work := make(chan due)
	var busy sync.Map // due key → struct{}: offered here and not settled (queued included)
	ls := &lanes{m: map[string]*lane{}}
	ls.resume = func(d due) {
		go func() {
			select {
			case work <- d:
			case <-ctx.Done():
			}
		}()
	}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case d := <-work:
					if !s.runDue(ctx, d, ls) {
						busy.Delete(d.key)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	// offer hands key to the workers unless it is running or queued here
	// already; fresh says it was not.
	offer := func(key string) (fresh, ok bool) {
		d, parsed := parseDue(key)
		if !parsed {
			_, _ = s.due().DeleteID(ctx, key)
			return false, true
		}
		if _, running := busy.LoadOrStore(key, struct{}{}); running {
			return false, true
		}
		select {
		case work <- d:
			return true, true
		case <-ctx.Done():
			return false, false
		}
	}
	tick := time.NewTicker(opts.Poll)
	defer func() {
		tick.Stop()
		wg.Wait()
	}()
	// scan offers what is due, reading past pages whose every entry is
	// running or queued here (a busy endpoint's backlog), so that work
	// behind them is seen.
	scan := func() bool {
		after := ""
		for range maxPages {
			keys, err := s.dueKeys(ctx, after)
			if err != nil {
				if ctx.Err() == nil {
					s.cfg.Logger.Error("read webhook due list", "err", err)
				}
				return ctx.Err() == nil
			}
			fresh := 0
			for _, k := range keys {
				f, ok := offer(k)
				if !ok {
					return false
				}
				if f {
					fresh++
				}
			}
			if len(keys) < duePage || fresh > 0 {
				return true
			}
			after = keys[len(keys)-1]
		}
		return true
	}
	if !scan() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-s.wake:
			if _, ok := offer(k); !ok {
				return
			}
		case <-tick.C:
			if !scan() {
				return
			}
		}
	}
}

// A scan reads the due list duePage entries at a time, at most maxPages.
const (
	duePage  = 500
	maxPages = 20
)

// dueKeys reads a page of the due list up to now, past after.
func (s *Service) dueKeys(ctx context.Context, after string) ([]string, error) {
	docs, err := store.All[dueDoc](ctx, s.due(), store.Range{To: store.TimeKey(s.now().Add(time.Millisecond)), After: after, Limit: duePage})
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(docs))
	for i, d := range docs {
		keys[i] = d.ID
	}
	return keys, nil
}

// lanes bound the attempts in flight to each endpoint in this process and
// queue the others, so that a slow receiver holds back only its own
// deliveries and a fast one gets the next as soon as an attempt ends.
type lanes struct {
	mu     sync.Mutex
	m      map[string]*lane
	resume func(due) // hands a queued delivery back to the workers
}

type lane struct {
	running int
	queue   []due
}

// maxQueued bounds the deliveries queued for one endpoint here; past it
// a delivery's entry moves back (busyDelay).
const maxQueued = 1000

// enter takes one of endpoint key's perEndpoint slots for d (ok), or
// queues d (queued), or neither: the lane is full.
func (l *lanes) enter(key string, d due) (ok, queued bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if ln == nil {
		ln = &lane{}
		l.m[key] = ln
	}
	switch {
	case ln.running < perEndpoint:
		ln.running++
		return true, false
	case len(ln.queue) < maxQueued:
		ln.queue = append(ln.queue, d)
		return false, true
	}
	return false, false
}

// leave gives back a slot: to the next queued delivery, which is resumed
// holding it, or to the lane.
func (l *lanes) leave(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[key]
	if len(ln.queue) > 0 {
		next := ln.queue[0]
		ln.queue = ln.queue[1:]
		next.lane = key
		l.resume(next)
		return
	}
	ln.running--
	if ln.running == 0 {
		delete(l.m, key)
	}
}

// runDue does one piece of due work and settles its entry. It reports
// whether the work is queued here (still this process's: not settled).
func (s *Service) runDue(ctx context.Context, d due, ls *lanes) (queued bool) {
	if d.lane != "" {
		defer ls.leave(d.lane)
	}
	var err error
	done := true
	switch d.kind {
	case kindEvent:
		at, _ := store.TimeOfKey(d.key)
		done, err = s.fanOut(ctx, d.owner, d.id, at)
		if !done && err == nil {
			// Its claim is on its way: look again shortly (the poll would
			// too, within a second).
			time.AfterFunc(50*time.Millisecond, func() { s.poke(d.key) })
		}
	case kindDelivery:
		done, queued, err = s.attempt(ctx, d, ls)
		if queued {
			return true
		}
	case kindExpire:
		err = s.expire(ctx, d.owner, d.id)
	case kindEndpoint:
		err = s.judgeEndpoint(ctx, d.owner, d.id)
	}
	if err != nil {
		if s.cfg.Shredded(err) {
			err, done = nil, true // the customer's data is gone: so is its work
		} else if ctx.Err() == nil {
			s.cfg.Logger.Warn("webhook work failed; retrying", "kind", d.kind, "owner", d.owner.key(), "id", d.id, "err", err)
			done = false
		}
	}
	if done && ctx.Err() == nil {
		if _, err := s.due().DeleteID(context.WithoutCancel(ctx), d.key); err != nil {
			s.cfg.Logger.Error("settle webhook work", "err", err)
		}
	}
	return false
}

// judgeEndpoint disables an endpoint with no 2xx since a failure
// failingFor ago (it got no attempt since, or the attempts kept failing).
func (s *Service) judgeEndpoint(ctx context.Context, o Owner, id string) error {
	now := s.now()
	cur, err := s.endpoint(ctx, o, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !cur.Enabled || cur.FailingSince == nil || now.Sub(*cur.FailingSince) < s.scaled(failingFor) {
		return nil
	}
	next, err := s.change(ctx, o, id, store.AnyVersion, func(cur *endpointDoc) *endpointDoc {
		if !cur.Enabled || cur.FailingSince == nil || now.Sub(*cur.FailingSince) < s.scaled(failingFor) {
			return nil
		}
		nxt := *cur
		nxt.Enabled = false
		return &nxt
	})
	if err != nil || next.Enabled {
		return err
	}
	return s.failPending(ctx, o, id)
}

// failPending fails the pending deliveries of a disabled endpoint (not one
// in flight: its attempt settles it), for a retry once it is enabled again.
func (s *Service) failPending(ctx context.Context, o Owner, endpointID string) error {
	r := store.Prefix("s/" + endpointID + "/" + StatusPending + "/")
	r.Limit = 100
	for {
		docs, keys, err := s.deliveriesOf(o).Scan(ctx, r, func(d *deliveryDoc) bool { return d.Status == StatusPending })
		if err != nil {
			return err
		}
		for _, d := range docs {
			if d.InFlight {
				continue
			}
			if err := s.finish(ctx, o, d, nil, "endpoint disabled"); err != nil {
				return err
			}
		}
		if len(keys) < r.Limit {
			return nil
		}
		r.After = keys[len(keys)-1]
	}
}

func (s *Service) expire(ctx context.Context, o Owner, id string) error {
	d, err := s.deliveriesOf(o).Latest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.Status == StatusPending || s.now().Sub(d.CreatedAt) < keepFor {
		return nil // retried since: its own expiry comes later
	}
	return s.purgeDelivery(ctx, o, d)
}

// attempt makes one attempt of a due delivery if it is still due and this
// process claims it. It reports whether the due entry is settled.
func (s *Service) attempt(ctx context.Context, dd due, ls *lanes) (done, queued bool, err error) {
	o := dd.owner
	v := s.deliveriesOf(o)
	d, err := v.Latest(ctx, dd.id)
	if errors.Is(err, store.ErrNotFound) {
		// The entry is written just before its delivery: a young one
		// waits for it; one whose delivery never came (or is gone: its
		// customer shredded) goes.
		at, _ := store.TimeOfKey(dd.key)
		return s.now().Sub(at) >= claimGrace || s.shredded(ctx, o), false, nil
	}
	if err != nil {
		return false, false, err
	}
	now := s.now()
	if d.Status != StatusPending {
		return true, false, nil
	}
	if d.NextAttemptAt != nil && d.NextAttemptAt.After(now.Add(time.Second)) {
		// Not due yet: the entry of its due time exists (written before
		// the state that named it), this one is stale.
		return true, false, nil
	}
	ep, err := s.endpoint(ctx, o, d.EndpointID)
	if errors.Is(err, ErrNotFound) {
		return true, false, s.purgeDelivery(ctx, o, d) // the endpoint was deleted
	}
	if err != nil {
		return false, false, err
	}
	if !ep.Enabled {
		return true, false, s.finish(ctx, o, d, nil, "endpoint disabled")
	}
	if dd.lane == "" { // else resumed from the queue, holding a slot
		lane := o.key() + "/" + ep.ID
		switch ok, queued := ls.enter(lane, dd); {
		case queued:
			return false, true, nil // resumed when one of the endpoint's attempts ends
		case !ok:
			// Its queue here is full: the entry moves back a second.
			if err := s.addDue(ctx, dueKey(now.Add(busyDelay), kindDelivery, o, d.ID)); err != nil {
				return false, false, err
			}
			return true, false, nil
		}
		defer ls.leave(lane)
	}
	// The attempt is the claim of the next version; its lease's entry
	// is written first, so a process that dies mid-attempt is followed.
	leaseEnd := now.Add(attemptLease)
	leaseKey := dueKey(leaseEnd, kindDelivery, o, d.ID)
	if err := s.addDue(ctx, leaseKey); err != nil {
		return false, false, err
	}
	d, err = v.Update(ctx, d.ID, d.Version, func(cur *deliveryDoc) (*deliveryDoc, struct{}, error) {
		nxt := *cur
		nxt.Version++
		nxt.Attempts++
		nxt.LastAttemptAt, nxt.NextAttemptAt, nxt.InFlight = &now, &leaseEnd, true
		return &nxt, struct{}{}, nil
	}, store.UpdateOptions[deliveryDoc]{})
	if err != nil {
		// The lease's entry stays: it may be the winner's too (the same
		// millisecond), and a stale entry only makes the worker look.
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			return true, false, nil // another process has it
		}
		return false, false, err
	}
	code, aerr := s.post(ctx, o, ep, d)
	if ctx.Err() != nil {
		return false, false, nil // stopping: the lease's entry brings it back
	}
	sctx := context.WithoutCancel(ctx)
	// The outcome is worth a few tries: a settle given up waits for the
	// attempt's lease (15 s) before the delivery moves again.
	for try := range 3 {
		if err = s.settle(sctx, o, ep, d, code, aerr); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err == nil {
		_, _ = s.due().DeleteID(sctx, leaseKey)
	}
	if s.shredded(sctx, o) {
		// A shred that came during the attempt deleted the customer's
		// data before this settle wrote its claim: take that away too.
		return true, false, s.purgeDelivery(sctx, o, d)
	}
	return err == nil, false, err
}

// post makes the HTTP request of an attempt: the status code, or the
// reason no answer came.
func (s *Service) post(ctx context.Context, o Owner, ep *endpointDoc, d *deliveryDoc) (int, error) {
	var b bodyDoc
	if err := s.colls(o).bodies.FindID(ctx, d.ID).Decode(&b); err != nil {
		return 0, fmt.Errorf("body: %w", err)
	}
	raw, err := s.crypt(ctx, o, bodyField("b", d.ID), b.Body, false)
	if err != nil {
		return 0, err
	}
	secrets, err := s.signing(ctx, o, ep)
	if err != nil {
		return 0, err
	}
	url, err := s.url(ctx, o, ep)
	if err != nil {
		return 0, err
	}
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	if err := Headers(req.Header, secrets, d.EventID, s.now(), raw); err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "Switchboard-Webhooks/"+s.cfg.Version)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// settle records an attempt's outcome: delivered, retried later, failed,
// and the endpoint's health.
func (s *Service) settle(ctx context.Context, o Owner, ep *endpointDoc, d *deliveryDoc, code int, aerr error) error {
	now := s.now()
	if aerr == nil && code >= 200 && code < 300 {
		if ep.FailingSince != nil {
			if _, err := s.change(ctx, o, ep.ID, store.AnyVersion, func(cur *endpointDoc) *endpointDoc {
				if cur.FailingSince == nil {
					return nil
				}
				nxt := *cur
				nxt.FailingSince = nil
				return &nxt
			}); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		return s.finish(ctx, o, d, &code, "")
	}
	reason := attemptError(code, aerr)
	disable := code == http.StatusGone
	if ep.FailingSince == nil {
		// The first failure since a 2xx: the endpoint is judged again
		// when its 5 days are up, whether events come or not.
		if err := s.addDue(ctx, dueKey(now.Add(s.scaled(failingFor)), kindEndpoint, o, ep.ID)); err != nil {
			return err
		}
	}
	cur, err := s.change(ctx, o, ep.ID, store.AnyVersion, func(cur *endpointDoc) *endpointDoc {
		nxt := *cur
		switch {
		case !cur.Enabled:
			return nil
		case disable, cur.FailingSince != nil && now.Sub(*cur.FailingSince) >= s.scaled(failingFor):
			nxt.Enabled = false
		case cur.FailingSince == nil:
			nxt.FailingSince = &now
		default:
			return nil
		}
		return &nxt
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil && ep.Enabled && !cur.Enabled {
		if err := s.failPending(ctx, o, ep.ID); err != nil {
			return err
		}
	}
	var cp *int
	if code != 0 {
		cp = &code
	}
	if disable || now.Sub(d.CreatedAt) >= s.scaled(tryFor) {
		return s.finish(ctx, o, d, cp, reason)
	}
	next := now.Add(s.retryAfter(d.Attempts))
	key := dueKey(next, kindDelivery, o, d.ID)
	if err := s.addDue(ctx, key); err != nil {
		return err
	}
	_, err = s.deliveriesOf(o).Update(ctx, d.ID, d.Version, func(cur *deliveryDoc) (*deliveryDoc, struct{}, error) {
		nxt := *cur
		nxt.Version++
		nxt.NextAttemptAt, nxt.InFlight, nxt.LastStatusCode, nxt.LastError = &next, false, cp, &reason
		return &nxt, struct{}{}, nil
	}, store.UpdateOptions[deliveryDoc]{})
	return ignoreConflict(err)
}

// finish ends a delivery: delivered (code a 2xx, the body dropped) or
// failed (the body kept for a manual retry), removed after keepFor.
func (s *Service) finish(ctx context.Context, o Owner, d *deliveryDoc, code *int, reason string) error {
	status := StatusDelivered
	if reason != "" {
		status = StatusFailed
	}
	now := s.now()
	if err := s.addDue(ctx, dueKey(d.CreatedAt.Add(keepFor), kindExpire, o, d.ID)); err != nil {
		return err
	}
	_, err := s.deliveriesOf(o).Update(ctx, d.ID, d.Version, func(cur *deliveryDoc) (*deliveryDoc, struct{}, error) {
		nxt := *cur
		nxt.Version++
		nxt.Status, nxt.NextAttemptAt, nxt.InFlight = status, nil, false
		if code != nil {
			nxt.LastStatusCode = code
		}
		if reason != "" {
			nxt.LastError = &reason
		} else {
			nxt.LastError = nil
		}
		if cur.LastAttemptAt == nil {
			nxt.LastAttemptAt = &now
		}
		return &nxt, struct{}{}, nil
	}, store.UpdateOptions[deliveryDoc]{})
	if err != nil {
		// Overtaken (another attempt past this one's lease): that one's
		// outcome stands, and the body is its to drop.
		return ignoreConflict(err)
	}
	if status == StatusDelivered {
		_, err = s.colls(o).bodies.DeleteID(ctx, d.ID)
	}
	return err
}

func ignoreConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return nil // another attempt took it past its lease: its outcome stands
	}
	return err
}

// attemptError is the lastError of a failed attempt: never the body of the
// receiver's answer, nor an address.
func attemptError(code int, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("HTTP %d", code)
	case errors.Is(err, ErrRefusedAddress):
		return "address refused"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "Client.Timeout"):
		return "timeout after 10 s"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	default:
		return "connection failed"
	}
}

// shredded reports whether o is a customer whose data is gone for good.
func (s *Service) shredded(ctx context.Context, o Owner) bool {
	if o.Partner {
		return false
	}
	_, err := s.cfg.Cipher(ctx, o.ID)
	return err != nil && s.cfg.Shredded(err)
}

// addDue writes a due entry; one already there (the same work at the same
// millisecond) is the same entry.
func (s *Service) addDue(ctx context.Context, key string) error {
	if err := s.due().InsertOne(ctx, dueDoc{ID: key}); err != nil && !mongo.IsDuplicateKeyError(err) {
		return err
	}
	return nil
}
