package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// benchPlatform is the real router (over HTTP) on the real engine, keyring
// and sandbox Twilio, with one partner.
type benchPlatform struct {
	db      *store.DB
	svc     *tenants.Service
	url     string
	key     string
	partner tenants.Partner
}

// newBenchPlatform builds a platform on fresh databases. Its databases,
// keyring and server live as long as tb (see benchFixtureTB for longer).
func newBenchPlatform(tb testing.TB) *benchPlatform {
	tb.Helper()
	pl := wiringtest.New(tb, wiringtest.Options{})
	srv := httptest.NewServer(NewRouter(Config{Tenants: pl.Tenants, Idempotency: pl.Idempotency,
		Logger: storetest.Logger(), Registry: prometheus.NewRegistry(), Ready: pl.DB.Ping, RateLimit: 1e6, RateBurst: 1e6}))
	tb.Cleanup(srv.Close)
	p, key, err := pl.Tenants.CreatePartner(context.Background(), "Bench")
	if err != nil {
		tb.Fatal(err)
	}
	return &benchPlatform{db: pl.DB, svc: pl.Tenants, url: srv.URL, key: key, partner: p}
}

// do sends one request with the partner's key and fails tb on anything but
// a 2xx answer.
func (p *benchPlatform) do(tb testing.TB, method, path, body string) []byte {
	tb.Helper()
	return benchCall(tb, p.url, method, path, p.key, body)
}

// benchCall sends one request with a partner key or tenant token to the
// server at url and fails tb on anything but a 2xx answer.
func benchCall(tb testing.TB, url, method, path, key, body string) []byte {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		tb.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return raw
}

// register registers a customer over HTTP and returns its id.
func (p *benchPlatform) register(tb testing.TB, space string) string {
	out := p.do(tb, "POST", "/v1/customers", fmt.Sprintf(`{"space":%q,"industryId":%q,"label":"Bench Customer %s"}`,
		space, tenants.Industries()[0].ID, space))
	var c struct{ ID string }
	if err := json.Unmarshal(out, &c); err != nil || c.ID == "" {
		tb.Fatalf("register %s: %v %s", space, err, out)
	}
	return c.ID
}

// activeCustomer registers and activates a customer over HTTP.
func (p *benchPlatform) activeCustomer(tb testing.TB, space string) string {
	id := p.register(tb, space)
	p.do(tb, "POST", "/v1/customers/"+id+"/activate", `{"expectedVersion":1}`)
	return id
}

const benchContactInfo = `{"expectedVersion":"any","businessName":"  Corner Bakery ","phoneNumber":"+14165550100",
	"addressLine1":"1 King St W","postalCode":"M5H 1A1","province":"ON","country":"CA"}`

// BenchmarkRegisterActivate measures POST /v1/customers + POST .../activate
// through real HTTP (sandbox Twilio), and, as its same-run baseline, the bare
// driver inserting an equivalent customer document into the same engine.
// It reports the ratio (target ≤ 6).
func BenchmarkRegisterActivate(b *testing.B) {
	p := newBenchPlatform(b)
	db := p.db
	industry := tenants.Industries()[0].ID
	var full, bare time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		id := p.register(b, fmt.Sprintf("bench-%d", n))
		p.do(b, "POST", "/v1/customers/"+id+"/activate", `{"expectedVersion":1}`)
		full += time.Since(start)

		now := time.Now().UTC()
		doc := bson.D{
			{Key: "_id", Value: uuid.Must(uuid.NewV7()).String()}, {Key: "partnerId", Value: "p"},
			{Key: "space", Value: fmt.Sprintf("bare-%d", n)}, {Key: "industryId", Value: industry},
			{Key: "status", Value: "ACTIVE"}, {Key: "version", Value: 2}, {Key: "label", Value: make([]byte, 60)},
			{Key: "twilio", Value: bson.D{{Key: "accountSid", Value: "AC0123456789abcdef0123456789abcdef"}, {Key: "status", Value: "active"}, {Key: "authToken", Value: make([]byte, 70)}}},
			{Key: "createdAt", Value: now}, {Key: "updatedAt", Value: now}, {Key: "activatedAt", Value: now},
		}
		start = time.Now()
		if _, err := db.Control.Collection("bare_customers").InsertOne(b.Context(), doc); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		n++
	}
	b.ReportMetric(float64(full.Microseconds())/float64(n), "register+activate-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "bare-insert-µs")
	b.ReportMetric(float64(full)/float64(bare), "ratio")
}

// Sizes of the at-scale platforms: customers on the platform (fixture
// clones and the real customers together).
var benchScaleSizes = [2]int{100, 10000}

// benchScalePlatform is a platform holding a given number of customers,
// with two real customers to measure: info (ACTIVE, its contact info is
// changed by the benchmark) and events (ACTIVE, 52 events).
type benchScalePlatform struct {
	*benchPlatform
	info, events string
}

// benchAtScale holds the two at-scale platforms, built once per test binary
// and shared by BenchmarkContactInfoAtScale and BenchmarkEventsAtScale.
var benchAtScale struct {
	once  sync.Once
	plats [2]*benchScalePlatform
}

// benchFixtureTB is the tb of a fixture built once and shared by several
// benchmarks: its cleanups never run, so its databases, keyring and server
// outlive the benchmark that happened to build it (storetest.Main removes
// the engine's files when the binary ends).
type benchFixtureTB struct{ testing.TB }

func (benchFixtureTB) Cleanup(func()) {}

// benchScalePlatforms returns the platforms of 100 and of 10,000 customers.
//
// Each has a template customer made through the API (register, activate,
// contact info: a customer document, three events, two gates and a key),
// cloned with new ids, spaces and event ids into the customers, events,
// locks and customer_keys collections with InsertMany, so the fixture has
// exactly the shape of real customers without 10,000 HTTP round trips.
func benchScalePlatforms(b *testing.B) [2]*benchScalePlatform {
	benchAtScale.once.Do(func() {
		for s, n := range benchScaleSizes {
			p := &benchScalePlatform{benchPlatform: newBenchPlatform(benchFixtureTB{b})}
			tpl := p.activeCustomer(b, "template")
			p.do(b, "PUT", "/v1/customers/"+tpl+"/contact-info", benchContactInfo)
			p.info = p.activeCustomer(b, "measured-info")
			p.events = p.activeCustomer(b, "measured-events")
			for range 50 {
				if _, err := p.svc.UpdateContactInfo(context.Background(), p.partner, p.events, tenants.AnyVersion,
					tenants.ContactInfoInput{BusinessName: benchPtr("Corner Bakery"), AddressLine1: benchPtr("1 King St W"),
						PostalCode: benchPtr("M5H 1A1"), Country: benchPtr("CA")}); err != nil {
					b.Fatal(err)
				}
			}
			benchCloneCustomer(b, p.db, tpl, n-3)
			if got, err := p.db.Control.Collection("customers").CountDocuments(context.Background(), bson.D{}); err != nil || got != int64(n) {
				b.Fatalf("platform holds %d customers (%v), want %d", got, err, n)
			}
			benchAtScale.plats[s] = p
		}
	})
	if benchAtScale.plats[1] == nil {
		b.Fatal("the at-scale fixture failed to build (in an earlier benchmark)")
	}
	return benchAtScale.plats
}

func benchPtr(s string) *string { return &s }

// benchCloneCustomer inserts n copies of customer tpl: its document, its
// events (claims), its gates and its key, with every occurrence of its id,
// space and event ids replaced by new ones.
func benchCloneCustomer(b *testing.B, db *store.DB, tpl string, n int) {
	ctx := context.Background()
	type source struct {
		coll *mongo.Collection
		docs []bson.D
	}
	find := func(c *mongo.Collection, filter bson.D) source {
		cur, err := c.Find(ctx, filter)
		if err != nil {
			b.Fatal(err)
		}
		var docs []bson.D
		if err := cur.All(ctx, &docs); err != nil {
			b.Fatal(err)
		}
		if len(docs) == 0 {
			b.Fatalf("template %s has nothing in %s", tpl, c.Name())
		}
		return source{c, docs}
	}
	prefix := bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + tpl + ":"}}}}
	sources := []source{
		find(db.Control.Collection("customers"), bson.D{{Key: "_id", Value: tpl}}),
		find(db.Control.Collection("events"), prefix),
		find(db.Control.Collection("locks"), prefix),
		find(db.Keys.Collection("customer_keys"), bson.D{{Key: "_id", Value: tpl}}),
	}
	if len(sources[1].docs) != 3 || len(sources[2].docs) != 2 {
		b.Fatalf("template has %d events and %d gates, want 3 and 2", len(sources[1].docs), len(sources[2].docs))
	}
	space, _ := benchField(sources[0].docs[0], "space").(string)
	var eventIDs []string
	for _, ev := range sources[1].docs {
		ev, _ := benchField(ev, "event").(bson.D)
		id, _ := benchField(ev, "id").(string)
		eventIDs = append(eventIDs, id)
	}
	if space == "" || len(eventIDs) != 3 || eventIDs[0] == "" {
		b.Fatalf("template customer: space %q, event ids %q", space, eventIDs)
	}
	out := make([][]any, len(sources))
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		repl := map[string]string{tpl: id, space: fmt.Sprintf("fixture-%05d", i)}
		for _, e := range eventIDs {
			repl[e] = uuid.Must(uuid.NewV7()).String()
		}
		for k, src := range sources {
			for _, d := range src.docs {
				out[k] = append(out[k], benchReplaceStrings(d, repl, tpl+":", id+":"))
			}
		}
	}
	for k, src := range sources {
		for lo := 0; lo < len(out[k]); lo += 10000 {
			if _, err := src.coll.InsertMany(ctx, out[k][lo:min(lo+10000, len(out[k]))]); err != nil {
				b.Fatalf("fill %s: %v", src.coll.Name(), err)
			}
		}
	}
}

// benchField returns the value of key in d, or nil.
func benchField(d bson.D, key string) any {
	for _, e := range d {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// benchReplaceStrings copies v, replacing strings found in repl and the
// prefix from of any other string by to.
func benchReplaceStrings(v any, repl map[string]string, from, to string) any {
	switch x := v.(type) {
	case bson.D:
		out := make(bson.D, len(x))
		for i, e := range x {
			out[i] = bson.E{Key: e.Key, Value: benchReplaceStrings(e.Value, repl, from, to)}
		}
		return out
	case bson.A:
		out := make(bson.A, len(x))
		for i, e := range x {
			out[i] = benchReplaceStrings(e, repl, from, to)
		}
		return out
	case string:
		if r, ok := repl[x]; ok {
			return r
		}
		if strings.HasPrefix(x, from) {
			return to + x[len(from):]
		}
	}
	return v
}

// BenchmarkContactInfoAtScale measures PUT /v1/customers/{id}/contact-info
// (expectedVersion "any": a new version each time) through the real router
// on a platform of 10,000 customers and, as its same-run baseline, on one
// of 100, alternating which goes first. It reports ms/op of each and the
// ratio 10,000/100 (target ≤ 1.2).
//
// The two platforms are built once per test binary (15-20 s, shared with
// BenchmarkEventsAtScale): run it with -benchtime=Nx.
func BenchmarkContactInfoAtScale(b *testing.B) {
	plats := benchScalePlatforms(b)
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k := range plats {
			s := (n + k) % len(plats)
			p := plats[s]
			start := time.Now()
			p.do(b, "PUT", "/v1/customers/"+p.info+"/contact-info", benchContactInfo)
			took[s] += time.Since(start)
		}
		n++
	}
	benchReportScale(b, took, n)
}

// BenchmarkEventsAtScale measures GET /v1/customers/{id}/events?limit=50 of
// a customer with 52 events through the real router, with the events of
// 10,000 customers stored and, as its same-run baseline, of 100,
// alternating which goes first. It reports ms/op of each and the ratio
// 10,000/100 (target ≤ 1.5).
func BenchmarkEventsAtScale(b *testing.B) {
	plats := benchScalePlatforms(b)
	for _, p := range plats {
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *string           `json:"nextCursor"`
		}
		raw := p.do(b, "GET", "/v1/customers/"+p.events+"/events?limit=50", "")
		if err := json.Unmarshal(raw, &page); err != nil || len(page.Items) != 50 || page.NextCursor == nil || *page.NextCursor == "" {
			b.Fatalf("events page: %v %d items: %.300s", err, len(page.Items), raw)
		}
	}
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k := range plats {
			s := (n + k) % len(plats)
			p := plats[s]
			start := time.Now()
			p.do(b, "GET", "/v1/customers/"+p.events+"/events?limit=50", "")
			took[s] += time.Since(start)
		}
		n++
	}
	benchReportScale(b, took, n)
}

func benchReportScale(b *testing.B, took [2]time.Duration, n int) {
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(n) }
	b.ReportMetric(ms(took[0]), fmt.Sprintf("%d-ms/op", benchScaleSizes[0]))
	b.ReportMetric(ms(took[1]), fmt.Sprintf("%d-ms/op", benchScaleSizes[1]))
	b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
}

// BenchmarkServeMemory registers 100 customers, then 9,900 more, over HTTP
// on one server, and reports the live heap after each (after a GC) and the
// ratio 10,000/100 (target ≤ 1.5): nothing a server keeps grows with the
// number of customers (the caches are bounded, customers add no
// collection, index or handle).
//
// Run: go test -run '^$' -bench ServeMemory -benchtime 1x -timeout 30m ./api/
func BenchmarkServeMemory(b *testing.B) {
	heap := func() float64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	for b.Loop() {
		p := newBenchPlatform(b)
		n := 0
		add := func(upTo int) {
			for ; n < upTo; n++ {
				p.activeCustomer(b, fmt.Sprintf("mem-%d", n))
			}
		}
		add(100)
		at100 := heap()
		add(10000)
		at10k := heap()
		b.ReportMetric(at100, "heap-100-MiB")
		b.ReportMetric(at10k, "heap-10000-MiB")
		b.ReportMetric(at10k/at100, "ratio")
	}
}
