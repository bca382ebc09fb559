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
	var busy sync.Map  // due key → struct{}
	var slots sync.Map // owner/endpoint → chan struct{} (perEndpoint)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				s.runDue(ctx, d, &slots)
				busy.Delete(d.key)
			}
		}()
	}
	offer := func(key string) bool {
		d, ok := parseDue(key)
		if !ok {
			_, _ = s.due().DeleteID(ctx, key)
			return true
		}
		if _, running := busy.LoadOrStore(key, struct{}{}); running {
			return true
		}
		select {
		case work <- d:
			return true
		case <-ctx.Done():
			return false
		}
	}
	tick := time.NewTicker(opts.Poll)
	defer func() {
		tick.Stop()
		close(work)
		wg.Wait()
	}()
	scan := func() bool {
		keys, err := s.dueKeys(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("read webhook due list", "err", err)
		}
		for _, k := range keys {
			if !offer(k) {
				return false
			}
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
			if !offer(k) {
				return
			}
		case <-tick.C:
			if !scan() {
				return
			}
		}
	}
}

// dueKeys reads the due list up to now (its oldest 500 entries).
func (s *Service) dueKeys(ctx context.Context) ([]string, error) {
	docs, err := store.All[dueDoc](ctx, s.due(), store.Range{To: store.TimeKey(s.now().Add(time.Millisecond)), Limit: 500})
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(docs))
	for i, d := range docs {
		keys[i] = d.ID
	}
	return keys, nil
}

// runDue does one piece of due work and settles its entry.
func (s *Service) runDue(ctx context.Context, d due, slots *sync.Map) {
	var err error
	done := true
	switch d.kind {
	case kindEvent:
		done, err = s.fanOut(ctx, d.owner, d.id)
		if !done && err == nil {
			// Its claim is on its way: look again shortly (the poll would
			// too, within a second).
			time.AfterFunc(50*time.Millisecond, func() { s.poke(d.key) })
		}
	case kindDelivery:
		done, err = s.attempt(ctx, d, slots)
	case kindExpire:
		err = s.expire(ctx, d.owner, d.id)
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
func (s *Service) attempt(ctx context.Context, dd due, slots *sync.Map) (bool, error) {
	o := dd.owner
	v := s.deliveriesOf(o)
	d, err := v.Latest(ctx, dd.id)
	if errors.Is(err, store.ErrNotFound) {
		// The entry is written just before its delivery: a young one
		// waits for it; one whose delivery never came (or is gone: its
		// customer shredded) goes.
		if !o.Partner {
			if _, cerr := s.cfg.Cipher(ctx, o.ID); cerr != nil && s.cfg.Shredded(cerr) {
				return true, nil
			}
		}
		at, _ := store.TimeOfKey(dd.key)
		return s.now().Sub(at) >= claimGrace, nil
	}
	if err != nil {
		return false, err
	}
	now := s.now()
	if d.Status != StatusPending {
		return true, nil
	}
	if d.NextAttemptAt != nil && d.NextAttemptAt.After(now.Add(time.Second)) {
		// Not due yet: the entry of its due time exists (written before
		// the state that named it), this one is stale.
		return true, nil
	}
	ep, err := s.endpoint(ctx, o, d.EndpointID)
	if errors.Is(err, ErrNotFound) {
		return true, s.purgeDelivery(ctx, o, d) // the endpoint was deleted
	}
	if err != nil {
		return false, err
	}
	if !ep.Enabled {
		return true, s.finish(ctx, o, d, nil, "endpoint disabled")
	}
	sem, _ := slots.LoadOrStore(o.key()+"/"+ep.ID, make(chan struct{}, perEndpoint))
	select {
	case sem.(chan struct{}) <- struct{}{}:
		defer func() { <-sem.(chan struct{}) }()
	default:
		return false, nil // this endpoint is busy here: the next poll
	}
	// The attempt is the claim of the next version; its lease's entry
	// is written first, so a process that dies mid-attempt is followed.
	leaseEnd := now.Add(attemptLease)
	leaseKey := dueKey(leaseEnd, kindDelivery, o, d.ID)
	if err := s.addDue(ctx, leaseKey); err != nil {
		return false, err
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
			return true, nil // another process has it
		}
		return false, err
	}
	code, aerr := s.post(ctx, o, ep, d)
	if ctx.Err() != nil {
		return false, nil // stopping: the lease's entry brings it back
	}
	sctx := context.WithoutCancel(ctx)
	err = s.settle(sctx, o, ep, d, code, aerr)
	if err == nil {
		_, _ = s.due().DeleteID(sctx, leaseKey)
	}
	if !o.Partner {
		// A shred that came during the attempt deleted the customer's
		// data before this settle wrote its claim: take that away too.
		if _, cerr := s.cfg.Cipher(sctx, o.ID); cerr != nil && s.cfg.Shredded(cerr) {
			return true, s.purgeDelivery(sctx, o, d)
		}
	}
	return err == nil, err
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
	if _, err := s.change(ctx, o, ep.ID, store.AnyVersion, func(cur *endpointDoc) *endpointDoc {
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
	}); err != nil && !errors.Is(err, ErrNotFound) {
		return err
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
	_, err := s.deliveriesOf(o).Update(ctx, d.ID, d.Version, func(cur *deliveryDoc) (*deliveryDoc, struct{}, error) {
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
	if err := ignoreConflict(err); err != nil {
		return err
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

// addDue writes a due entry; one already there (the same work at the same
// millisecond) is the same entry.
func (s *Service) addDue(ctx context.Context, key string) error {
	if err := s.due().InsertOne(ctx, dueDoc{ID: key}); err != nil && !mongo.IsDuplicateKeyError(err) {
		return err
	}
	return nil
}
