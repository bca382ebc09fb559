package api

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// messagingBench is the real router over HTTP with messaging, on the real
// engine, with the twilio-go adapter and the Twilio double (no sender runs
// unless a benchmark starts one), and one ACTIVE customer with a number.
type messagingBench struct {
	p                  *wiringtest.Platform
	dbl                *twiliotest.Server
	client             *twilio.Client
	url                string
	customerID, token  string
	accountSID, number string
	subToken           string // the sub-account's own auth token
}

func newMessagingBench(b *testing.B) *messagingBench {
	b.Helper()
	dbl := twiliotest.NewServer(b, testMasterSID, testMasterToken)
	client, err := twilio.NewClient(twilio.Config{AccountSID: testMasterSID, AuthToken: testMasterToken, APIURL: dbl.URL()})
	if err != nil {
		b.Fatal(err)
	}
	p := wiringtest.New(b, wiringtest.Options{Twilio: client})
	srv := p.Serve(b, NewRouter(Config{Tenants: p.Tenants, Tokens: p.Tokens, Contacts: p.Contacts, Messages: p.Messages, PublicURL: p.PublicURL,
		Idempotency: p.Idempotency, Logger: storetest.Logger(), Registry: prometheus.NewRegistry(), Ready: p.DB.Ping, RateLimit: 1e6, RateBurst: 1e6}))
	ctx := context.Background()
	partner, _, err := p.Tenants.CreatePartner(ctx, "Bench")
	if err != nil {
		b.Fatal(err)
	}
	c, err := p.Tenants.Register(ctx, partner, tenants.RegisterInput{Space: "bench-msg", IndustryID: tenants.Industries()[0].ID, Label: "L"})
	if err != nil {
		b.Fatal(err)
	}
	if c, err = p.Tenants.Activate(ctx, partner, c.ID, tenants.AnyVersion); err != nil {
		b.Fatal(err)
	}
	n, err := p.Messages.BuyNumber(ctx, partner.ID, c.ID, messages.BuyInput{PhoneNumber: ptrTo("+14155550100")})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := p.Tokens.Mint(ctx, tokensMint(c.ID))
	if err != nil {
		b.Fatal(err)
	}
	mb := &messagingBench{p: p, dbl: dbl, client: client, url: srv.URL, customerID: c.ID, token: tok.AccessToken,
		accountSID: c.Twilio.AccountSID, number: n.PhoneNumber}
	for _, a := range dbl.Accounts() {
		if a.SID == mb.accountSID {
			mb.subToken = a.AuthToken
		}
	}
	return mb
}

func ptrTo[T any](v T) *T { return &v }

// bareInsert inserts a document shaped like a message (its sealed part
// random bytes of the same size) into the customer's database: the
// baseline of one write.
func (mb *messagingBench) bareInsert(b *testing.B, coll string) time.Duration {
	now := time.Now().UTC()
	doc := bson.D{{Key: "_id", Value: uuid.Must(uuid.NewV7()).String()}, {Key: "version", Value: 1}, {Key: "direction", Value: "outbound"},
		{Key: "status", Value: "accepted"}, {Key: "sealed", Value: make([]byte, 160)},
		{Key: "partyIdx", Value: bson.A{make([]byte, 32), make([]byte, 32)}}, {Key: "contactId", Value: nil},
		{Key: "createdAt", Value: now}, {Key: "updatedAt", Value: now}}
	start := time.Now()
	if _, err := mb.p.DB.DataDatabase(mb.customerID).Collection(coll).InsertOne(b.Context(), doc); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkSendMessage measures POST /v1/messages with an Idempotency-Key
// through real HTTP (the sender not running: the answer is what is
// measured), and, as its same-run baseline, a bare InsertOne of a message
// document into the same customer's database (target ≤ 1.5).
func BenchmarkSendMessage(b *testing.B) {
	mb := newMessagingBench(b)
	var full, bare time.Duration
	n := 0
	for b.Loop() {
		body := fmt.Sprintf(`{"to":"+1415555%04d","body":"bench message %d"}`, n%10000, n)
		start := time.Now()
		sendBench(b, mb.url, mb.token, body, fmt.Sprintf("bench-%d", n))
		full += time.Since(start)
		bare += mb.bareInsert(b, "bare_messages")
		n++
	}
	b.ReportMetric(float64(full.Microseconds())/float64(n), "send-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "bare-insert-µs")
	b.ReportMetric(float64(full)/float64(bare), "ratio")
}

func sendBench(b *testing.B, base, token, body, key string) {
	req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		b.Fatalf("send: %d", resp.StatusCode)
	}
}

// BenchmarkSender measures 1,000 accepted messages handed to Twilio (the
// double) by the sender, from the start of the sender until the outbox is
// empty (every message settled), against the same 1,000 creates made
// directly with twilio-go against the double, as many at once as the
// sender has workers. It reports the sender's rate as a fraction of the
// direct rate (target ≥ 0.5): with the double answering at once, and with
// it answering after 100 ms, as Twilio's API takes about that long.
func BenchmarkSender(b *testing.B) {
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		b.Run("twilio-latency="+delay.String(), func(b *testing.B) { benchSender(b, delay) })
	}
}

func benchSender(b *testing.B, delay time.Duration) {
	const n, workers = 1000, 8
	mb := newMessagingBench(b)
	mb.dbl.SetDelay(delay)
	outbox := mb.p.DB.Control.Collection("outbox")
	var sender, direct time.Duration
	rounds := 0
	for b.Loop() {
		h, err := mb.p.Messages.Open(b.Context(), mb.customerID)
		if err != nil {
			b.Fatal(err)
		}
		var ids []string
		for i := range n {
			to, body := fmt.Sprintf("+1415556%04d", i), fmt.Sprintf("sender round %d message %d", rounds, i)
			m, _, err := h.Send(b.Context(), messages.SendInput{To: &to, Body: &body}, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			mb.p.Messages.Run(ctx, messages.SenderOptions{Workers: workers, Poll: time.Second})
		}()
		for {
			err := outbox.FindOne(b.Context(), bson.D{}).Err()
			if errors.Is(err, mongo.ErrNoDocuments) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		sender += time.Since(start)
		cancel()
		<-done
		for _, id := range ids {
			if m, err := h.Get(b.Context(), id); err != nil || m.Status != messages.StatusSending {
				b.Fatalf("message %s: %s %v", id, m.Status, err)
			}
		}

		start = time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					_, err := mb.client.CreateMessage(context.Background(), mb.accountSID, messages.Send{From: mb.number, To: fmt.Sprintf("+1415557%04d", i),
						Body: fmt.Sprintf("direct round %d message %d", rounds, i), StatusCallback: mb.p.PublicURL + messages.StatusPath + "?mid=x"})
					if err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		direct += time.Since(start)
		rounds++
	}
	b.ReportMetric(float64(n*rounds)/sender.Seconds(), "sender-msg/s")
	b.ReportMetric(float64(n*rounds)/direct.Seconds(), "direct-msg/s")
	b.ReportMetric(direct.Seconds()/sender.Seconds(), "rate-ratio")
}

// hookRequest is a signed Twilio callback to the bench server.
func (mb *messagingBench) hook(b *testing.B, path string, params map[string]string) {
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	req, _ := http.NewRequest("POST", mb.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilio.Sign(mb.subToken, mb.p.PublicURL+path, params))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("webhook %s: %d", path, resp.StatusCode)
	}
}

// BenchmarkInbound measures a signed inbound webhook through real HTTP
// (signature, dedupe, contact lookup, timeline; the sender is a known
// contact) against a bare InsertOne (target ≤ 4).
func BenchmarkInbound(b *testing.B) {
	mb := newMessagingBench(b)
	h, err := mb.p.Contacts.Open(b.Context(), mb.customerID)
	if err != nil {
		b.Fatal(err)
	}
	const from = "+14155550177"
	if _, err := h.Upsert(b.Context(), "Add", "phone", []contactsInput{phoneInput(from)}); err != nil {
		b.Fatal(err)
	}
	var full, bare time.Duration
	n := 0
	for b.Loop() {
		sid := fmt.Sprintf("SM%032x", n+1)
		start := time.Now()
		mb.hook(b, messages.InboundPath, map[string]string{"AccountSid": mb.accountSID, "MessageSid": sid, "SmsSid": sid,
			"From": from, "To": mb.number, "Body": fmt.Sprintf("inbound %d", n), "NumMedia": "0"})
		full += time.Since(start)
		bare += mb.bareInsert(b, "bare_inbound")
		n++
	}
	b.ReportMetric(float64(full.Microseconds())/float64(n), "inbound-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "bare-insert-µs")
	b.ReportMetric(float64(full)/float64(bare), "ratio")
}

// BenchmarkStatusStorm sends 3 status callbacks per message for 1,000 sent
// messages (sent, delivered and a duplicate, shuffled), 16 at a time,
// through the real webhook; every message must end delivered. Baseline:
// 3,000 bare replaces by _id, 16 at a time, in the same database.
func BenchmarkStatusStorm(b *testing.B) {
	const n, conc = 1000, 16
	mb := newMessagingBench(b)
	ctx := b.Context()
	var storm, bare time.Duration
	for b.Loop() {
		b.StopTimer()
		h, err := mb.p.Messages.Open(ctx, mb.customerID)
		if err != nil {
			b.Fatal(err)
		}
		type cb struct{ mid, sid, status string }
		var cbs []cb
		var ids []string
		for i := range n {
			to, body := fmt.Sprintf("+1415558%04d", i), fmt.Sprintf("storm %d", i)
			m, _, err := h.Send(ctx, messages.SendInput{To: &to, Body: &body}, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			sid := fmt.Sprintf("SM%032x", rand.Uint64())
			ids = append(ids, m.ID)
			cbs = append(cbs, cb{m.ID, sid, "sent"}, cb{m.ID, sid, "delivered"}, cb{m.ID, sid, "sent"})
		}
		rand.Shuffle(len(cbs), func(i, j int) { cbs[i], cbs[j] = cbs[j], cbs[i] })
		b.StartTimer()
		start := time.Now()
		work := make(chan cb)
		var wg sync.WaitGroup
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range work {
					mb.hook(b, messages.StatusPath+"?mid="+c.mid, map[string]string{"AccountSid": mb.accountSID, "MessageSid": c.sid, "MessageStatus": c.status})
				}
			}()
		}
		for _, c := range cbs {
			work <- c
		}
		close(work)
		wg.Wait()
		storm += time.Since(start)
		b.StopTimer()
		for _, id := range ids {
			m, err := h.Get(ctx, id)
			if err != nil || m.Status != messages.StatusDelivered {
				b.Fatalf("message %s ended at %s (%v)", id, m.Status, err)
			}
		}
		// Baseline: 3,000 replaces by _id, 16 at a time.
		coll := mb.p.DB.DataDatabase(mb.customerID).Collection("bare_storm")
		docs := make([]string, n)
		for i := range docs {
			docs[i] = uuid.Must(uuid.NewV7()).String()
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: docs[i]}, {Key: "status", Value: "accepted"}, {Key: "sealed", Value: make([]byte, 160)}}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start = time.Now()
		rep := make(chan int)
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rep {
					if _, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: docs[i%n]}}, bson.D{{Key: "status", Value: "delivered"}, {Key: "sealed", Value: make([]byte, 160)}}); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range 3 * n {
			rep <- i
		}
		close(rep)
		wg.Wait()
		bare += time.Since(start)
	}
	b.ReportMetric(storm.Seconds()*1000/float64(b.N), "storm-ms")
	b.ReportMetric(bare.Seconds()*1000/float64(b.N), "bare-replaces-ms")
	b.ReportMetric(float64(storm)/float64(bare), "ratio")
}

func tokensMint(customerID string) tokens.MintInput {
	ttl := 86400
	return tokens.MintInput{CustomerID: customerID, Subject: "bench", TTLSeconds: &ttl}
}

type contactsInput = contacts.Input

func phoneInput(phone string) contacts.Input {
	return contacts.Input{Phone: contacts.Field[string]{Set: true, Value: phone}}
}
