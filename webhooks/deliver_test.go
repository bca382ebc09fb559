package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/internal/racing"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/server"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/webhooks"
	"github.com/switchboard/switchboard/wiring"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// receiver is an endpoint under test: it verifies every delivery with the
// Standard Webhooks library, counts deliveries by webhook-id, and answers
// what answer says (200 when nil).
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	secrets []string
	got     map[string]int // webhook-id → deliveries
	events  []event
	answer  func(n int) int // n: requests so far, from 1
	n       atomic.Int64
	bad     atomic.Int64
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode)
	os.Exit(m.Run())
}

type event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customerId"`
	Data       json.RawMessage `json:"data"`
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	n := int(r.n.Add(1))
	body, _ := io.ReadAll(req.Body)
	if r.answer != nil {
		if code := r.answer(n); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := false
	for _, s := range r.secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err == nil && wh.Verify(body, req.Header) == nil {
			ok = true
		}
	}
	if !ok {
		r.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("webhook-id") {
		r.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.got[ev.ID] == 0 {
		r.events = append(r.events, ev)
	}
	r.got[ev.ID]++
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) trust(secret string) {
	r.mu.Lock()
	r.secrets = append(r.secrets, secret)
	r.mu.Unlock()
}

// wait returns the events received once n distinct ones have come.
func (r *receiver) wait(n int) []event {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a loaded machine (CI runs every package at once)
	for {
		r.mu.Lock()
		evs := append([]event(nil), r.events...)
		r.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d events received, want %d", len(evs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *receiver) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 0
	for _, n := range r.got {
		d += n - 1
	}
	return d
}

type env struct {
	p          *wiringtest.Platform
	partner    tenants.Partner
	customerID string
}

func newEnv(t *testing.T) *env { return newEnvScaled(t, 0.0001) }

// newEnvScaled is newEnv with the retry schedule (and its 3- and 5-day
// windows) multiplied by scale.
func newEnvScaled(t *testing.T, scale float64) *env {
	t.Helper()
	allow := true
	p := wiringtest.New(t, wiringtest.Options{Webhooks: wiring.WebhooksConfig{AllowPrivate: &allow, RetryScale: scale}})
	ctx := t.Context()
	partner, _, err := p.Tenants.CreatePartner(ctx, "Partner "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Tenants.Register(ctx, partner, tenants.RegisterInput{Space: fmt.Sprintf("s-%d", time.Now().UnixNano()), IndustryID: tenants.Industries()[0].ID, Label: "L"})
	if err != nil {
		t.Fatal(err)
	}
	// The router sets how event data is shown (the API's JSON).
	server.Router(p.App, server.Options{})
	return &env{p: p, partner: partner, customerID: c.ID}
}

// worker is another serve process's delivery worker over the same
// databases.
func (e *env) worker(t *testing.T) *webhooks.Service {
	return webhooks.NewService(webhooks.Config{
		Control: e.p.DB.Control, Tenant: e.p.DB.Tenant, Cipher: e.p.Tenants.Cipher, Master: e.p.Master,
		Guard: webhooks.Guard{AllowPrivate: true}, RetryScale: 0.0001, Logger: storetest.Logger(),
	})
}

func run(t *testing.T, s *webhooks.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, webhooks.WorkerOptions{Poll: 50 * time.Millisecond})
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func (e *env) endpoint(t *testing.T, o webhooks.Owner, r *receiver, events ...string) webhooks.Endpoint {
	t.Helper()
	url := r.srv.URL + "/hook"
	ep, err := e.p.Webhooks.Create(t.Context(), o, webhooks.Input{URL: &url, Events: events}, []string{"contacts:read", "messages:read"})
	if err != nil {
		t.Fatal(err)
	}
	r.trust(ep.Secret)
	return ep
}

func str(v string) contacts.Field[string] { return contacts.Field[string]{Set: true, Value: v} }

// TestContactEventsArriveSigned: a contact's creation, update and deletion
// reach a subscribed endpoint, signed, each once, with the contact as the
// API shows it (the deletion: its id alone).
func TestContactEventsArriveSigned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	e.endpoint(t, webhooks.Customer(e.customerID), r, "contact.created", "contact.updated", "contact.deleted")
	h, err := e.p.Contacts.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Upsert(t.Context(), contacts.ModeAdd, contacts.KeyEmail, []contacts.Input{{Email: str("ann@example.com"), FirstName: str("Ann")}})
	if err != nil || res[0].ID == "" {
		t.Fatalf("upsert: %+v %v", res, err)
	}
	id := res[0].ID
	// Each change's event arrives before the next change (a deletion
	// takes back the contact's events not delivered yet).
	r.wait(1)
	if _, err := h.Patch(t.Context(), id, store.AnyVersion, contacts.Input{LastName: str("Lee")}); err != nil {
		t.Fatal(err)
	}
	r.wait(2)
	if err := h.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	evs := r.wait(3)
	types := map[string]event{}
	for _, ev := range evs {
		types[ev.Type] = ev
		if ev.CustomerID != e.customerID {
			t.Errorf("%s: customerId %q", ev.Type, ev.CustomerID)
		}
	}
	if !strings.Contains(string(types["contact.created"].Data), `"firstName":"Ann"`) ||
		!strings.Contains(string(types["contact.updated"].Data), `"lastName":"Lee"`) ||
		string(types["contact.deleted"].Data) != `{"id":"`+id+`"}` {
		t.Fatalf("events: %+v", types)
	}
	time.Sleep(300 * time.Millisecond)
	if d, b := r.duplicates(), r.bad.Load(); d != 0 || b != 0 {
		t.Fatalf("%d duplicates, %d unverified deliveries", d, b)
	}
}

// TestRacingChangesPushOneEvent: of many changes racing for one version,
// one wins; exactly its event goes out, and no loser's.
func TestRacingChangesPushOneEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	e.endpoint(t, webhooks.Customer(e.customerID), r, "contact.updated")
	h, err := e.p.Contacts.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Upsert(t.Context(), contacts.ModeAdd, contacts.KeyEmail, []contacts.Input{{Email: str("race@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	id := res[0].ID
	const rounds, racers = 4, 12
	for round := range rounds {
		cur, err := h.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var won atomic.Int64
		var winner atomic.Value
		racing.Release(racers, func(i int) {
			name := fmt.Sprintf("R%c%c", 'a'+round, 'a'+i)
			_, err := h.Patch(context.Background(), id, cur.Version, contacts.Input{FirstName: str(name)})
			if err == nil {
				won.Add(1)
				winner.Store(name)
			} else if !errors.Is(err, switchboard.ErrVersionConflict) {
				t.Error(err)
			}
		})
		if won.Load() != 1 {
			t.Fatalf("round %d: %d winners", round, won.Load())
		}
		evs := r.wait(round + 1)
		last := evs[len(evs)-1]
		if !strings.Contains(string(last.Data), `"firstName":"`+winner.Load().(string)+`"`) {
			t.Fatalf("round %d: the event is not the winner's (%s): %s", round, winner.Load(), last.Data)
		}
	}
	// The losers' events are dropped, never delivered.
	time.Sleep(time.Second)
	if n := len(r.wait(rounds)); n != rounds || r.duplicates() != 0 {
		t.Fatalf("%d events (%d duplicates) for %d changes", n, r.duplicates(), rounds)
	}
}

// TestHeldEventWaitsForItsClaim: an event written before its change is
// delivered once the change's claim stands (a crash between the two
// writes: the claim comes from the retry's roll-forward) and dropped when
// the claim never came.
func TestHeldEventWaitsForItsClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := newReceiver(t)
	o := webhooks.Partner(e.partner.ID)
	e.endpoint(t, o, r, "customer.activated")
	ctx := t.Context()
	claims := e.p.DB.Control.Collection("test_claims")
	mk := func(n int) webhooks.Change {
		return webhooks.Change{
			Claim:  webhooks.ClaimRef{Control: true, Coll: "test_claims", ClaimID: fmt.Sprintf("c:%d", n), Writer: "w1"},
			Events: []webhooks.Pending{{Type: "customer.activated", CustomerID: e.customerID, Data: map[string]int{"n": n}}},
		}
	}
	if err := e.p.Webhooks.Hold(ctx, o, []webhooks.Change{mk(1), mk(2), mk(3)}); err != nil {
		t.Fatal(err)
	}
	// Change 1 won (its claim, by the same writer); change 2's version was
	// won by another writer; change 3 never claimed.
	if _, err := claims.InsertMany(ctx, []any{map[string]string{"_id": "c:1", "writer": "w1"}, map[string]string{"_id": "c:2", "writer": "w2"}}); err != nil {
		t.Fatal(err)
	}
	run(t, e.worker(t)) // another process, after the crash
	evs := r.wait(1)
	time.Sleep(time.Second)
	if evs = r.wait(1); len(evs) != 1 || string(evs[0].Data) != `{"n":1}` {
		t.Fatalf("events: %+v", evs)
	}
}

// TestSeveralProcessesDeliverEachEventOnce: three workers over one
// deployment; every event of many changes reaches the endpoint, once.
func TestSeveralProcessesDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 3 {
		run(t, e.worker(t))
	}
	r := newReceiver(t)
	e.endpoint(t, webhooks.Customer(e.customerID), r, "contact.created")
	h, err := e.p.Contacts.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	racing.Release(n, func(i int) {
		if _, err := h.Upsert(context.Background(), contacts.ModeAdd, contacts.KeyEmail,
			[]contacts.Input{{Email: str(fmt.Sprintf("p%d@example.com", i))}}); err != nil {
			t.Error(err)
		}
	})
	r.wait(n)
	time.Sleep(time.Second)
	if got, d := len(r.wait(n)), r.duplicates(); got != n || d != 0 {
		t.Fatalf("%d events for %d contacts, %d duplicates", got, n, d)
	}
}

// TestFailingReceiverIsRetried: 500, a timeout-free refusal, then 2xx:
// the delivery is retried on the (scaled) schedule until delivered; its
// log shows the attempts and the body is gone.
func TestFailingReceiverIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	r.answer = func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	d, err := e.p.Webhooks.Test(t.Context(), o, ep.ID)
	if err != nil || d.Status != webhooks.StatusPending {
		t.Fatalf("test event: %+v %v", d, err)
	}
	r.wait(1)
	var got webhooks.Delivery
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _, err := e.p.Webhooks.Deliveries(t.Context(), o, ep.ID, webhooks.ListInput{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Status == webhooks.StatusDelivered {
			got = ds[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: %+v", ds)
		}
	}
	if got.ID != d.ID || got.Attempts != 3 || got.LastStatusCode == nil || *got.LastStatusCode != 204 || got.LastError != nil {
		t.Fatalf("delivery: %+v", got)
	}
	// The body goes right after the delivered state is stored.
	for deadline := time.Now().Add(5 * time.Second); countPrefix(t, e.p.DB.Control.Collection("webhook_bodies"), e.partner.ID) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the body is kept after delivery")
		}
	}
	failed, _, err := e.p.Webhooks.Deliveries(t.Context(), o, ep.ID, webhooks.ListInput{Status: webhooks.StatusFailed, Limit: 10})
	if err != nil || len(failed) != 0 {
		t.Fatalf("failed list: %+v %v", failed, err)
	}
}

func countPrefix(t *testing.T, c *mongo.Collection, prefix string) int {
	t.Helper()
	n, err := store.Plain(c).Count(t.Context(), store.Prefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// TestGoneDisablesTheEndpoint: a 410 disables the endpoint at once and
// fails the delivery; a retry after re-enabling sends it.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	r := newReceiver(t)
	gone := atomic.Bool{}
	gone.Store(true)
	r.answer = func(int) int {
		if gone.Load() {
			return http.StatusGone
		}
		return http.StatusOK
	}
	o := webhooks.Partner(e.partner.ID)
	ep := e.endpoint(t, o, r, "*")
	d, err := e.p.Webhooks.Test(t.Context(), o, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cur, err := e.p.Webhooks.Get(t.Context(), o, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !cur.Enabled {
			ep = cur
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 410 did not disable the endpoint")
		}
	}
	// The delivery failed with the 410, and waits for a manual retry.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds, _, err := e.p.Webhooks.Deliveries(t.Context(), o, ep.ID, webhooks.ListInput{Status: webhooks.StatusFailed, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].ID == d.ID && ds[0].LastStatusCode != nil && *ds[0].LastStatusCode == http.StatusGone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failed deliveries: %+v", ds)
		}
	}
	gone.Store(false)
	on := true
	if _, err := e.p.Webhooks.Update(t.Context(), o, ep.ID, store.AnyVersion, webhooks.Input{Enabled: &on}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := e.p.Webhooks.Retry(t.Context(), o, ep.ID, d.ID)
		if err == nil {
			break
		}
		if !errors.Is(err, webhooks.ErrInvalidTransition) || time.Now().After(deadline) {
			t.Fatalf("retry: %v", err)
		}
	}
	r.wait(1)
}

// TestEndpointLimitHoldsUnderRaces: 30 creates at once make 20 endpoints.
func TestEndpointLimitHoldsUnderRaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := webhooks.Partner(e.partner.ID)
	url := "http://127.0.0.1:1/hook"
	var made, refused atomic.Int64
	racing.Release(30, func(int) {
		_, err := e.p.Webhooks.Create(context.Background(), o, webhooks.Input{URL: &url, Events: []string{"*"}}, nil)
		switch {
		case err == nil:
			made.Add(1)
		case errors.Is(err, webhooks.ErrLimitReached):
			refused.Add(1)
		default:
			t.Error(err)
		}
	})
	eps, err := e.p.Webhooks.List(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if made.Load() != webhooks.MaxEndpoints || refused.Load() != 10 || len(eps) != webhooks.MaxEndpoints {
		t.Fatalf("%d made, %d refused, %d listed", made.Load(), refused.Load(), len(eps))
	}
	if err := e.p.Webhooks.Delete(t.Context(), o, eps[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Webhooks.Create(t.Context(), o, webhooks.Input{URL: &url, Events: []string{"*"}}, nil); err != nil {
		t.Fatalf("a create after a delete: %v", err)
	}
}

// TestRotationSignsWithBothSecrets: after a rotation a delivery carries two
// signatures, each verifying alone; a second rotation ends the oldest.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run(t, e.p.Webhooks)
	type got struct {
		h    http.Header
		body []byte
	}
	reqs := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	o := webhooks.Partner(e.partner.ID)
	url := srv.URL
	ep, err := e.p.Webhooks.Create(t.Context(), o, webhooks.Input{URL: &url, Events: []string{"*"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifies := func(g got, secret string) bool {
		wh, err := standardwebhooks.NewWebhook(secret)
		return err == nil && wh.Verify(g.body, g.h) == nil
	}
	deliver := func() got {
		if _, err := e.p.Webhooks.Test(t.Context(), o, ep.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-reqs:
			return g
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery")
		}
		return got{}
	}
	first := ep.Secret
	rot, err := e.p.Webhooks.Rotate(t.Context(), o, ep.ID)
	if err != nil || rot.Secret == "" || rot.Secret == first {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	g := deliver()
	if n := len(strings.Fields(g.h.Get("webhook-signature"))); n != 2 || !verifies(g, first) || !verifies(g, rot.Secret) {
		t.Fatalf("after one rotation: %d signatures; old verifies %v, new %v", n, verifies(g, first), verifies(g, rot.Secret))
	}
	rot2, err := e.p.Webhooks.Rotate(t.Context(), o, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	g = deliver()
	if n := len(strings.Fields(g.h.Get("webhook-signature"))); n != 2 || verifies(g, first) || !verifies(g, rot.Secret) || !verifies(g, rot2.Secret) {
		t.Fatalf("after two rotations: %d signatures; first verifies %v (want false)", n, verifies(g, first))
	}
}
