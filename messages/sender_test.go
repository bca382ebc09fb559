package messages_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

const (
	masterSID   = "AC0000000000000000000000000000000b"
	masterToken = "0123456789abcdef0123456789abcdef"
	recipient   = "+14155550142"
)

// env is one ACTIVE customer with a number, on the real engine, with the
// twilio-go adapter talking to the Twilio double.
type env struct {
	p          *wiringtest.Platform
	dbl        *twiliotest.Server
	client     *twilio.Client
	customerID string
	partnerID  string
	accountSID string
	number     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dbl := twiliotest.NewServer(t, masterSID, masterToken)
	client, err := twilio.NewClient(twilio.Config{AccountSID: masterSID, AuthToken: masterToken, APIURL: dbl.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := wiringtest.New(t, wiringtest.Options{Twilio: client})
	ctx := t.Context()
	partner, _, err := p.Tenants.CreatePartner(ctx, "Partner "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Tenants.Register(ctx, partner, tenants.RegisterInput{Space: fmt.Sprintf("s-%d", time.Now().UnixNano()), IndustryID: tenants.Industries()[0].ID, Label: "L"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err = p.Tenants.Activate(ctx, partner, c.ID, tenants.AnyVersion); err != nil {
		t.Fatal(err)
	}
	n, err := p.Messages.BuyNumber(ctx, partner.ID, c.ID, messages.BuyInput{PhoneNumber: ptr("+14155550100")})
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, dbl: dbl, client: client, customerID: c.ID, partnerID: partner.ID, accountSID: c.Twilio.AccountSID, number: n.PhoneNumber}
}

func ptr[T any](v T) *T { return &v }

// service is another process's messaging service over the same databases
// (a restart, or a second serve), with its own Twilio port.
func (e *env) service(tw messages.Twilio, lease time.Duration) *messages.Service {
	return messages.NewService(messages.Config{
		Control: e.p.DB.Control, Tenant: e.p.DB.Tenant, Cipher: e.p.Tenants.Cipher, Account: e.p.Tenants.MessagingAccount, Route: e.p.Tenants.SubaccountCustomer,
		Contacts: e.p.Contacts, Twilio: tw, PublicURL: e.p.PublicURL, Secret: e.p.Master.DeriveKey("messaging ids"),
		AttemptLease: lease, RetryBase: 20 * time.Millisecond, Logger: storetest.Logger(),
	})
}

// send accepts a message through svc.
func (e *env) send(t *testing.T, svc *messages.Service, body string) messages.Message {
	t.Helper()
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	to := recipient
	m, _, err := h.Send(t.Context(), messages.SendInput{To: &to, Body: &body}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs svc's sender until stop is called.
func run(svc *messages.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx, messages.SenderOptions{Poll: 20 * time.Millisecond})
	}()
	return func() { cancel(); <-done }
}

// wait polls message id until ok says so.
func (e *env) wait(t *testing.T, svc *messages.Service, id string, ok func(messages.Message) bool) messages.Message {
	t.Helper()
	h, err := svc.Open(t.Context(), e.customerID)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		m, err := h.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s stuck at %s (error %v)", id, m.Status, m.ErrorCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) atTwilio(body string) []twiliotest.Message {
	var out []twiliotest.Message
	for _, m := range e.dbl.Messages() {
		if m.Body == body {
			out = append(out, m)
		}
	}
	return out
}

func sending(m messages.Message) bool { return m.Status == messages.StatusSending }

// crashAfterCreate is a process that dies between Twilio's accept and its
// own write: the create reaches Twilio, then the sender is stopped before
// it hears the answer.
type crashAfterCreate struct {
	messages.Twilio
	crash func()
}

func (c crashAfterCreate) CreateMessage(ctx context.Context, sid string, s messages.Send) (messages.TwilioMessage, error) {
	if _, err := c.Twilio.CreateMessage(ctx, sid, s); err != nil {
		return messages.TwilioMessage{}, err
	}
	c.crash()
	<-ctx.Done()
	return messages.TwilioMessage{}, ctx.Err()
}

func TestCrashBetweenTwilioAndStatusWriteSendsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var stop func()
	var once sync.Once
	crashed := make(chan struct{})
	first := e.service(crashAfterCreate{Twilio: e.client, crash: func() { once.Do(func() { close(crashed); go stop() }) }}, 300*time.Millisecond)
	m := e.send(t, first, "crash-marker")
	stop = run(first)
	<-crashed
	stop()
	if n := len(e.atTwilio("crash-marker")); n != 1 {
		t.Fatalf("%d messages at Twilio after the crash, want 1", n)
	}
	// The restart finds the job in the outbox, waits out the attempt,
	// finds Twilio's message and adopts it instead of sending again.
	second := e.service(e.client, 300*time.Millisecond)
	defer run(second)()
	got := e.wait(t, second, m.ID, sending)
	at := e.atTwilio("crash-marker")
	if len(at) != 1 || got.TwilioSID == nil || *got.TwilioSID != at[0].SID {
		t.Fatalf("after the restart: %d at Twilio, ours %v", len(at), got.TwilioSID)
	}
	if n := e.dbl.RouteCount(twiliotest.RouteMessageCreate); n != 1 {
		t.Fatalf("%d creates, want 1", n)
	}
}

func TestLostAnswerIsReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 300*time.Millisecond)
	e.dbl.LoseNextMessageAnswer()
	m := e.send(t, svc, "lost-answer-marker")
	defer run(svc)()
	got := e.wait(t, svc, m.ID, sending)
	if at := e.atTwilio("lost-answer-marker"); len(at) != 1 || *got.TwilioSID != at[0].SID {
		t.Fatalf("%d at Twilio, ours %v", len(at), got.TwilioSID)
	}
}

func TestTimeoutIsReconciledThenResent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 300*time.Millisecond)
	// Twilio's answer (a 500 after nothing was created) never says
	// whether the message exists: reconcile finds none, and sends once.
	e.dbl.FailNextOn(twiliotest.RouteMessageCreate, 1, http.StatusInternalServerError)
	m := e.send(t, svc, "timeout-marker")
	defer run(svc)()
	got := e.wait(t, svc, m.ID, sending)
	if at := e.atTwilio("timeout-marker"); len(at) != 1 || *got.TwilioSID != at[0].SID {
		t.Fatalf("%d at Twilio, ours %v", len(at), got.TwilioSID)
	}
	if n := e.dbl.RouteCount(twiliotest.RouteMessageList); n < 1 {
		t.Fatal("no reconciliation before the resend")
	}
}

func TestDelayedAnswerIsReconciled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 300*time.Millisecond)
	e.dbl.SetDelay(1500 * time.Millisecond) // past the client's 1 s timeout
	m := e.send(t, svc, "delay-marker")
	stop := run(svc)
	defer stop()
	time.Sleep(1200 * time.Millisecond)
	e.dbl.SetDelay(0)
	got := e.wait(t, svc, m.ID, sending)
	if at := e.atTwilio("delay-marker"); len(at) != 1 || *got.TwilioSID != at[0].SID {
		t.Fatalf("%d at Twilio, ours %v", len(at), got.TwilioSID)
	}
}

func TestRateLimitedThenSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 300*time.Millisecond)
	e.dbl.FailNextOn(twiliotest.RouteMessageCreate, 2, http.StatusTooManyRequests)
	m := e.send(t, svc, "429-marker")
	defer run(svc)()
	got := e.wait(t, svc, m.ID, sending)
	if at := e.atTwilio("429-marker"); len(at) != 1 || *got.TwilioSID != at[0].SID {
		t.Fatalf("%d at Twilio, ours %v", len(at), got.TwilioSID)
	}
	// A 429 is an answer: nothing to reconcile.
	if n := e.dbl.RouteCount(twiliotest.RouteMessageList); n != 0 {
		t.Fatalf("%d list calls after 429s, want none", n)
	}
}

func TestOptedOutAtTwilioIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 300*time.Millisecond)
	e.dbl.RefuseNextMessage(messages.CodeOptedOut)
	m := e.send(t, svc, "21610-marker")
	defer run(svc)()
	got := e.wait(t, svc, m.ID, func(m messages.Message) bool { return m.Status == messages.StatusFailed })
	if got.ErrorCode == nil || *got.ErrorCode != messages.CodeOptedOut {
		t.Fatalf("error code %v", got.ErrorCode)
	}
	h, _ := svc.Open(t.Context(), e.customerID)
	o, err := h.OptOut(t.Context(), recipient)
	if err != nil || !o.OptedOut || *o.Source != "twilio:21610" {
		t.Fatalf("opt-out %+v %v", o, err)
	}
	to, body := recipient, "again"
	if _, _, err := h.Send(t.Context(), messages.SendInput{To: &to, Body: &body}, "", nil); !errors.Is(err, messages.ErrRecipientOptedOut) {
		t.Fatalf("send after 21610: %v", err)
	}
}

// TestTwoSendersNeverSendTwice runs several senders (as several serve
// processes) over the same outbox: every message is created at Twilio
// exactly once.
func TestTwoSendersNeverSendTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 40
	var ids []string
	svcs := []*messages.Service{e.service(e.client, 2*time.Second), e.service(e.client, 2*time.Second), e.service(e.client, 2*time.Second)}
	for i := range n {
		ids = append(ids, e.send(t, svcs[i%3], fmt.Sprintf("two-senders-%d", i)).ID)
	}
	for _, s := range svcs {
		defer run(s)()
	}
	for i, id := range ids {
		e.wait(t, svcs[0], id, sending)
		if at := e.atTwilio(fmt.Sprintf("two-senders-%d", i)); len(at) != 1 {
			t.Fatalf("message %d created %d times at Twilio", i, len(at))
		}
	}
	if got := e.dbl.RouteCount(twiliotest.RouteMessageCreate); got != n {
		t.Fatalf("%d creates for %d messages", got, n)
	}
}

// countingTwilio counts creates, to assert a restart sends what the
// previous process accepted.
type countingTwilio struct {
	messages.Twilio
	creates atomic.Int64
}

func (c *countingTwilio) CreateMessage(ctx context.Context, sid string, s messages.Send) (messages.TwilioMessage, error) {
	c.creates.Add(1)
	return c.Twilio.CreateMessage(ctx, sid, s)
}

func TestAcceptedBeforeARestartIsSentAfterIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Accepted by a process whose sender never ran (it died at once).
	m := e.send(t, e.service(e.client, time.Second), "restart-marker")
	tw := &countingTwilio{Twilio: e.client}
	after := e.service(tw, time.Second)
	defer run(after)()
	e.wait(t, after, m.ID, sending)
	if tw.creates.Load() != 1 || len(e.atTwilio("restart-marker")) != 1 {
		t.Fatalf("%d creates", tw.creates.Load())
	}
}
