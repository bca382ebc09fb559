package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/server"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/webhooks"
	"github.com/switchboard/switchboard/wiring"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// The benchmarks of pushed events (make bench). Each reports ratios against
// a baseline measured in the same run; none asserts a target.
//
//	go test -run '^$' -bench 'Events10000|InboundWithSubscription' -benchtime 1x ./webhooks/
//	go test -run '^$' -bench InboundWithSubscription -benchtime 400x ./webhooks/
//	go test -run '^$' -bench ReceiverDownThenUp -benchtime 1x ./webhooks/

// newBenchEnv is newEnv for a benchmark: a platform whose deliveries may
// reach the loopback receiver, retries scaled by scale, one partner and
// one registered customer.
func newBenchEnv(b *testing.B, scale float64) *env {
	b.Helper()
	allow := true
	p := wiringtest.New(b, wiringtest.Options{Webhooks: wiring.WebhooksConfig{AllowPrivate: &allow, RetryScale: scale}})
	ctx := b.Context()
	partner, _, err := p.Tenants.CreatePartner(ctx, "Partner "+b.Name())
	if err != nil {
		b.Fatal(err)
	}
	c, err := p.Tenants.Register(ctx, partner, tenants.RegisterInput{Space: fmt.Sprintf("s-%d", time.Now().UnixNano()), IndustryID: tenants.Industries()[0].ID, Label: "L"})
	if err != nil {
		b.Fatal(err)
	}
	server.Router(p.App, server.Options{})
	return &env{p: p, partner: partner, customerID: c.ID}
}

// runWorker runs s's delivery worker until b ends: 32 workers as the
// serve command's, the due list read every 50 ms as run's in the tests
// (the serve command reads it every second).
func runWorker(b *testing.B, s *webhooks.Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, webhooks.WorkerOptions{Poll: 50 * time.Millisecond})
	}()
	b.Cleanup(func() { cancel(); <-done })
}

// clock is a receiver that answers at once and records, per webhook-id,
// the arrival of its first delivery (and the id of the resource in the
// body), and counts the connections it was opened.
type clock struct {
	srv *httptest.Server
	// answer is the status of a request (204 when nil); first tells
	// whether the webhook-id is new.
	answer func(id string, first bool) int
	conns  atomic.Int64

	mu     sync.Mutex
	first  map[string]time.Time // webhook-id → first request
	at     map[string]time.Time // webhook-id → first 2xx
	ref    map[string]string    // webhook-id → data.id
	dups   int                  // 2xx beyond the first of an id
	sample []byte               // a body
}

func newClock(b *testing.B) *clock {
	c := &clock{}
	c.reset()
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	c.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.srv.Start()
	b.Cleanup(c.srv.Close)
	return c
}

func (c *clock) reset() {
	c.mu.Lock()
	c.first, c.at, c.ref, c.dups = map[string]time.Time{}, map[string]time.Time{}, map[string]string{}, 0
	c.mu.Unlock()
	c.conns.Store(0)
}

func (c *clock) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	now := time.Now()
	id := r.Header.Get("webhook-id")
	var ev struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(raw, &ev)
	c.mu.Lock()
	_, seen := c.first[id]
	if !seen {
		c.first[id] = now
	}
	c.mu.Unlock()
	code := http.StatusNoContent
	if c.answer != nil {
		code = c.answer(id, !seen)
	}
	if code >= 200 && code < 300 {
		c.mu.Lock()
		if _, ok := c.at[id]; ok {
			c.dups++
		} else {
			c.at[id], c.ref[id] = now, ev.Data.ID
		}
		if c.sample == nil {
			c.sample = raw
		}
		c.mu.Unlock()
	}
	w.WriteHeader(code)
}

func (c *clock) delivered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

// waitFor waits until n webhook-ids have been answered 2xx.
func (c *clock) waitFor(b *testing.B, n int, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for c.delivered() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events delivered after %s", c.delivered(), n, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endpointTo makes o's endpoint at c subscribed to events.
func (e *env) endpointTo(b *testing.B, o webhooks.Owner, c *clock, events ...string) webhooks.Endpoint {
	b.Helper()
	u := c.srv.URL + "/hook"
	ep, err := e.p.Webhooks.Create(b.Context(), o, webhooks.Input{URL: &u, Events: events}, []string{"contacts:read", "messages:read"})
	if err != nil {
		b.Fatal(err)
	}
	return ep
}

// createContacts makes n contacts of customerID, per Upsert call batch of
// them, and returns each contact's id → the return time of its batch,
// and when the first call started.
func (e *env) createContacts(b *testing.B, round, n, batch int) (map[string]time.Time, time.Time) {
	b.Helper()
	h, err := e.p.Contacts.Open(b.Context(), e.customerID)
	if err != nil {
		b.Fatal(err)
	}
	made := make(map[string]time.Time, n)
	start := time.Now()
	for i := 0; i < n; i += batch {
		in := make([]contacts.Input, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			in = append(in, contacts.Input{Email: str(fmt.Sprintf("r%d-c%d@example.com", round, j))})
		}
		res, err := h.Upsert(b.Context(), contacts.ModeAdd, contacts.KeyEmail, in)
		if err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		for _, r := range res {
			made[r.ID] = done
		}
	}
	if len(made) != n {
		b.Fatalf("%d contacts made, want %d", len(made), n)
	}
	return made, start
}

// barePosts sends n signed POSTs of body to u, conc at a time, with the
// client the worker uses, and returns how long they took.
func barePosts(b *testing.B, u string, body []byte, n, conc int) time.Duration {
	b.Helper()
	secret, err := webhooks.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	client := webhooks.Guard{AllowPrivate: true}.Client(10 * time.Second)
	defer client.CloseIdleConnections()
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					continue
				}
				if err := webhooks.Headers(req.Header, []string{secret}, fmt.Sprintf("bare_%08d", i), time.Now(), body); err != nil {
					b.Error(err)
					continue
				}
				req.Header.Set("User-Agent", "Switchboard-Webhooks/bench")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					b.Errorf("bare post: %d", resp.StatusCode)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkEvents10000: 10,000 contact creations (100 Upsert calls of 100
// contacts, one after the other) with one endpoint subscribed to
// contact.created and the worker running with the serve command's options.
// It reports the latency from each change (its Upsert call's return) to
// the event's arrival at a local receiver (answering 204 at once), p50
// and p99, and the throughput: events over the time from the first call
// to the last arrival. Baseline, same run: 10,000 signed POSTs of a body of
// the same size to the same receiver, 4 at a time (the worker's limit per
// endpoint), with the worker's HTTP client. It also reports how many
// connections each opened to the receiver.
//
// Run: go test -run '^$' -bench 'Events10000$' -benchtime 1x -timeout 30m ./webhooks/
func BenchmarkEvents10000(b *testing.B) {
	const n, batch, perEndpoint = 10000, 100, 4
	e := newBenchEnv(b, 0.0001)
	runWorker(b, e.p.Webhooks)
	c := newClock(b)
	e.endpointTo(b, webhooks.Customer(e.customerID), c, "contact.created")
	var lats []time.Duration
	var full, bare, produce time.Duration
	var conns, bareConns int64
	dups, rounds := 0, 0
	for b.Loop() {
		c.reset()
		made, start := e.createContacts(b, rounds, n, batch)
		produce += time.Since(start)
		c.waitFor(b, n, 20*time.Minute)
		c.mu.Lock()
		last, unknown := time.Time{}, ""
		for id, at := range c.at {
			changed, ok := made[c.ref[id]]
			if !ok {
				unknown = id
				continue
			}
			lats = append(lats, at.Sub(changed))
			if at.After(last) {
				last = at
			}
		}
		body := c.sample
		c.mu.Unlock()
		if unknown != "" {
			b.Fatalf("event %s is of no contact made", unknown)
		}
		full += last.Sub(start)
		// Settle the worker's last writes before the baseline.
		time.Sleep(time.Second)
		c.mu.Lock()
		dups += c.dups
		c.mu.Unlock()
		conns += c.conns.Load()

		c.reset()
		bare += barePosts(b, c.srv.URL+"/hook", body, n, perEndpoint)
		bareConns += c.conns.Load()
		if got := c.delivered(); got != n {
			b.Fatalf("baseline: %d of %d posts answered", got, n)
		}
		rounds++
	}
	slices.Sort(lats)
	total := float64(n * rounds)
	b.ReportMetric(ms(quantile(lats, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(lats, 0.99)), "p99-ms")
	b.ReportMetric(ms(lats[len(lats)-1]), "max-ms")
	b.ReportMetric(total/full.Seconds(), "events/s")
	b.ReportMetric(total/bare.Seconds(), "bare-posts/s")
	b.ReportMetric(bare.Seconds()/full.Seconds(), "vs-bare-posts")
	b.ReportMetric(produce.Seconds()/float64(rounds), "changes-s")
	b.ReportMetric(float64(conns)/float64(rounds), "conns")
	b.ReportMetric(float64(bareConns)/float64(rounds), "bare-conns")
	b.ReportMetric(float64(dups), "duplicates")
}

// BenchmarkInboundWithSubscription: what a webhook subscription adds to an
// inbound message. Two active customers, each sent b.N signed inbound
// callbacks (the sandbox's, from a known contact) through
// messages.Service.Inbound: one customer with no endpoint, then one with a
// tenant endpoint subscribed to message.received (a local receiver
// answering 204), the worker running throughout with the serve command's
// options. It reports each phase's ns/op and their ratio, and the time
// from the last inbound call to the last delivery.
//
// Run: go test -run '^$' -bench InboundWithSubscription -benchtime 400x ./webhooks/
func BenchmarkInboundWithSubscription(b *testing.B) {
	const warm = 20
	e := newBenchEnv(b, 0.0001)
	runWorker(b, e.p.Webhooks)
	c := newClock(b)
	ctx := b.Context()
	type customer struct {
		id, accountSID, token string
	}
	const from, to = "+14155550177", "+14155550100"
	mk := func(space string) customer {
		cu, err := e.p.Tenants.Register(ctx, e.partner, tenants.RegisterInput{Space: space, IndustryID: tenants.Industries()[0].ID, Label: "L"})
		if err != nil {
			b.Fatal(err)
		}
		if cu, err = e.p.Tenants.Activate(ctx, e.partner, cu.ID, tenants.AnyVersion); err != nil {
			b.Fatal(err)
		}
		h, err := e.p.Contacts.Open(ctx, cu.ID)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Upsert(ctx, contacts.ModeAdd, contacts.KeyPhone, []contacts.Input{{Phone: str(from)}}); err != nil {
			b.Fatal(err)
		}
		sid := cu.Twilio.AccountSID
		return customer{id: cu.ID, accountSID: sid, token: e.p.Sandbox.AuthToken(sid)}
	}
	without := mk(fmt.Sprintf("bench-without-%d", time.Now().UnixNano()))
	with := mk(fmt.Sprintf("bench-with-%d", time.Now().UnixNano()))
	e.endpointTo(b, webhooks.Customer(with.id), c, "message.received")
	hookURL := e.p.PublicURL + messages.InboundPath
	inbound := func(cu customer, i int) {
		params := e.p.Sandbox.Inbound(cu.accountSID, from, to, fmt.Sprintf("inbound %d", i))
		form := url.Values{}
		for k, v := range params {
			form.Set(k, v)
		}
		w := messages.Webhook{URL: hookURL, Form: form, Signature: twilio.Sign(cu.token, hookURL, params)}
		if err := e.p.Messages.Inbound(ctx, w); err != nil {
			b.Fatal(err)
		}
	}
	for i := range warm {
		inbound(without, i)
		inbound(with, i)
	}
	c.waitFor(b, warm, time.Minute)
	c.reset()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		inbound(without, warm+i)
	}
	tWithout := time.Since(start)
	start = time.Now()
	for i := range b.N {
		inbound(with, warm+i)
	}
	tWith := time.Since(start)
	end := time.Now()
	b.StopTimer()
	c.waitFor(b, b.N, 5*time.Minute)
	c.mu.Lock()
	last := time.Time{}
	for _, at := range c.at {
		if at.After(last) {
			last = at
		}
	}
	c.mu.Unlock()
	b.ReportMetric(float64(tWithout.Nanoseconds())/float64(b.N), "without-ns/op")
	b.ReportMetric(float64(tWith.Nanoseconds())/float64(b.N), "with-ns/op")
	b.ReportMetric(float64(tWith)/float64(tWithout), "with/without")
	b.ReportMetric(ms(last.Sub(end)), "drain-ms")
}

// BenchmarkReceiverDownThenUp: 1,000 contact creations to an endpoint
// whose receiver answers 503 to the first attempt of every delivery and
// 204 to any later one, with retries scaled so the first retry is due
// about 1 s (±20% jitter) after the failed attempt, the worker running with
// the serve command's options. It reports, per delivery, the time from its
// failed first attempt to its delivery as a multiple of that 1 s (p50,
// p99, max), and the time from the last failed first attempt (the receiver
// up for every delivery) to the last delivery, also over 1 s.
//
// Run: go test -run '^$' -bench ReceiverDownThenUp -benchtime 1x ./webhooks/
func BenchmarkReceiverDownThenUp(b *testing.B) {
	const n, batch = 1000, 100
	const scale = 0.2 // the first retry: 5 s × 0.2
	retry := time.Duration(float64(5*time.Second) * scale)
	e := newBenchEnv(b, scale)
	runWorker(b, e.p.Webhooks)
	c := newClock(b)
	c.answer = func(_ string, first bool) int {
		if first {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	}
	e.endpointTo(b, webhooks.Customer(e.customerID), c, "contact.created")
	var gaps []time.Duration
	var tail time.Duration
	rounds := 0
	for b.Loop() {
		c.reset()
		e.createContacts(b, rounds, n, batch)
		c.waitFor(b, n, 10*time.Minute)
		c.mu.Lock()
		var lastFail, lastOK time.Time
		for id, at := range c.at {
			f := c.first[id]
			gaps = append(gaps, at.Sub(f))
			if f.After(lastFail) {
				lastFail = f
			}
			if at.After(lastOK) {
				lastOK = at
			}
		}
		c.mu.Unlock()
		tail += lastOK.Sub(lastFail)
		rounds++
	}
	slices.Sort(gaps)
	b.ReportMetric(quantile(gaps, 0.5).Seconds()/retry.Seconds(), "p50-gap/retry")
	b.ReportMetric(quantile(gaps, 0.99).Seconds()/retry.Seconds(), "p99-gap/retry")
	b.ReportMetric(gaps[len(gaps)-1].Seconds()/retry.Seconds(), "max-gap/retry")
	b.ReportMetric(tail.Seconds()/float64(rounds), "up-to-last-s")
	b.ReportMetric(tail.Seconds()/float64(rounds)/retry.Seconds(), "up-to-last/retry")
}

// BenchmarkEventsIdle: the latency of an event when the worker is idle:
// 200 contact creations, one every 50 ms (no backlog), each to a local
// receiver answering 204 at once; p50 and p99 from the change's return to
// the event's arrival.
//
// Run: go test -run '^$' -bench 'EventsIdle$' -benchtime 1x ./webhooks/
func BenchmarkEventsIdle(b *testing.B) {
	const n = 200
	e := newBenchEnv(b, 0.0001)
	runWorker(b, e.p.Webhooks)
	c := newClock(b)
	e.endpointTo(b, webhooks.Customer(e.customerID), c, "contact.created")
	h, err := e.p.Contacts.Open(b.Context(), e.customerID)
	if err != nil {
		b.Fatal(err)
	}
	var lats []time.Duration
	rounds := 0
	for b.Loop() {
		c.reset()
		made := map[string]time.Time{}
		for i := range n {
			res, err := h.Upsert(b.Context(), contacts.ModeAdd, contacts.KeyEmail,
				[]contacts.Input{{Email: str(fmt.Sprintf("idle%d-%d@example.com", rounds, i))}})
			if err != nil {
				b.Fatal(err)
			}
			made[res[0].ID] = time.Now()
			time.Sleep(50 * time.Millisecond)
		}
		c.waitFor(b, n, time.Minute)
		c.mu.Lock()
		for id, at := range c.at {
			lats = append(lats, at.Sub(made[c.ref[id]]))
		}
		c.mu.Unlock()
		rounds++
	}
	slices.Sort(lats)
	b.ReportMetric(ms(quantile(lats, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(lats, 0.99)), "p99-ms")
	b.ReportMetric(ms(lats[len(lats)-1]), "max-ms")
}
