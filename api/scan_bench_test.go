package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// The scanning routes at two sizes. On the embedded engine only a filter
// that is exactly {_id: x} is served by an index; every other filter, and
// every sort, reads the whole collection. BenchmarkScan measures, through
// the real router over HTTP, one request (limit=50) of each route that
// scans, on a fixture of 100 and one of 10,000 items:
//
//   - customers: GET /v1/customers (partnerId filter, _id desc) with the
//     platform's customers split evenly across two partners (the control
//     database's customers collection is shared by all partners);
//   - contacts: GET /v1/contacts, the list of one customer's contacts;
//   - channel: GET /v1/contacts?channel=, a filter on channelIdx;
//   - timeline: GET /v1/contacts/{id}/timeline of a contact with that many
//     timeline items;
//
// and, as the reference served by _id, email: GET /v1/contacts?email=.
//
// Run: go test -run '^$' -bench Scan -benchtime 20x ./api/

// scanSizes are the two fixture sizes.
var scanSizes = [2]int{100, 100000}

// scanPlatform is the real router (partner and tenant routes) over HTTP on
// the real engine and keyring, with sandbox Twilio and two partners. (The
// helpers of lifecycle_test.go take *testing.T and newBenchPlatform has no
// tenant routes, so this is a copy of the minimum of both.)
type scanPlatform struct {
	db       *store.DB
	svc      *tenants.Service
	keyring  *crypto.Keyring
	contacts *contacts.Service
	url      string
	keyA     string
	keyB     string
	partnerA tenants.Partner
	partnerB tenants.Partner
}

func newScanPlatform(tb testing.TB) *scanPlatform {
	tb.Helper()
	ctx := context.Background()
	pl := wiringtest.New(tb, wiringtest.Options{})
	srv := httptest.NewServer(NewRouter(Config{
		Tenants:     pl.Tenants,
		Tokens:      pl.Tokens,
		Contacts:    pl.Contacts,
		Idempotency: pl.Idempotency,
		Logger:      storetest.Logger(),
		Registry:    prometheus.NewRegistry(),
		Ready:       pl.DB.Ping,
		RateLimit:   1e6, RateBurst: 1e6,
	}))
	tb.Cleanup(srv.Close)
	p := &scanPlatform{db: pl.DB, svc: pl.Tenants, keyring: pl.Keyring, contacts: pl.Contacts, url: srv.URL}
	var err error
	if p.partnerA, p.keyA, err = pl.Tenants.CreatePartner(ctx, "Scan A"); err != nil {
		tb.Fatal(err)
	}
	if p.partnerB, p.keyB, err = pl.Tenants.CreatePartner(ctx, "Scan B"); err != nil {
		tb.Fatal(err)
	}
	return p
}

// call sends one request with a partner key or tenant token and fails tb
// on anything but a 2xx answer.
func (p *scanPlatform) call(tb testing.TB, method, path, key, body string) []byte {
	tb.Helper()
	return benchCall(tb, p.url, method, path, key, body)
}

const scanContactInfo = `{"expectedVersion":"any","businessName":"Corner Bakery","phoneNumber":"+14165550100",
	"addressLine1":"1 King St W","postalCode":"M5H 1A1","province":"ON","country":"CA"}`

// customer registers, activates and sets the contact info of a customer of
// partner key over HTTP, and mints a token for it (all scopes).
func (p *scanPlatform) customer(tb testing.TB, key, space string) (id, token string) {
	tb.Helper()
	var c struct{ ID string }
	raw := p.call(tb, "POST", "/v1/customers", key, fmt.Sprintf(`{"space":%q,"industryId":%q,"label":"Label %s"}`, space, testIndustry, space))
	if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
		tb.Fatalf("register %s: %v %s", space, err, raw)
	}
	p.call(tb, "POST", "/v1/customers/"+c.ID+"/activate", key, `{}`)
	p.call(tb, "PUT", "/v1/customers/"+c.ID+"/contact-info", key, scanContactInfo)
	var t struct{ AccessToken string }
	raw = p.call(tb, "POST", "/v1/customers/"+c.ID+"/tokens", key, `{"subject":"app-user-1"}`)
	if err := json.Unmarshal(raw, &t); err != nil || t.AccessToken == "" {
		tb.Fatalf("mint: %v %s", err, raw)
	}
	return c.ID, t.AccessToken
}

// scanContactTemplates are the contacts made through the API in the
// contacts customer, four shapes; the clones cycle through them. Every one
// has an email (the match key); the first has an email channel.
const scanContactTemplates = `{"mode":"Add","matchBy":"email","data":[
	{"email":"ann@example.com","firstName":"Ann","lastName":"O'Neil","phone":"+1 (415) 555-0100","crmId":"crm-1",
	 "externalId":"ext-1","dateOfBirth":"1990-02-03","gender":"Female","country":"us",
	 "channels":[{"type":"sms","address":"+1 415 555 0100"},{"type":"email","address":"ANN@work.example"}],
	 "customAttributes":[{"name":"tier","value":"gold"}],
	 "consents":[{"topic":"marketing.sms","value":"True","source":"signup-form"}]},
	{"email":"bob@example.com","firstName":"Bob","phone":"+1 416 555 0101","channels":[{"type":"sms","address":"+14165550101"}],
	 "customAttributes":[{"name":"tier","value":"silver"},{"name":"city","value":"Toronto"}]},
	{"email":"cy@example.com","firstName":"Cy","lastName":"Young","crmId":"crm-3","channels":[{"type":"email","address":"cy@work.example"}]},
	{"email":"di@example.com","firstName":"Di","lastName":"Ross","phone":"+1 416 555 0103","externalId":"ext-4","country":"ca",
	 "channels":[{"type":"whatsapp","address":"+14165550103"},{"type":"email","address":"di@work.example"}],
	 "consents":[{"topic":"marketing.email","value":"True","source":"import"},{"topic":"marketing.sms","value":"False","source":"import"}]}
]}`

// scanFixture is one platform of a given size n:
//   - n customers on the platform, n/2 of partner A and n/2 of partner B;
//   - one customer (contactsTok) holding n contacts;
//   - one customer (timelineTok) whose only contact has n timeline items.
type scanFixture struct {
	n           int
	p           *scanPlatform
	contactsTok string
	timelineTok string
	timelineOf  string            // the contact with n timeline items
	email       string            // the email of one of the n contacts (a clone)
	deep        map[string]string // by route: the cursor of a page 90% down
	skipped     map[string]int    // by route: how many items are before it
	channel     string            // that contact's email channel
	contactID   string            // that contact
}

// buildScanFixture makes a handful of customers, contacts and timeline
// items through the API and clones them, read raw from their collections,
// with InsertMany: new _ids, the same shape, sealed values sealed again
// for their new documents, blind indexes of the clones' own values.
func buildScanFixture(b *testing.B, n int) *scanFixture {
	start := time.Now()
	f := &scanFixture{n: n, p: newScanPlatform(b)}
	p := f.p
	tplA, _ := p.customer(b, p.keyA, "tpl-a")
	contactsCust, contactsTok := p.customer(b, p.keyA, "contacts")
	f.contactsTok = contactsTok
	timelineCust, tlTok := p.customer(b, p.keyA, "timeline")
	f.timelineTok = tlTok
	p.customer(b, p.keyB, "tpl-b")
	scanCloneCustomers(b, p, tplA, n/2-3, n/2-1)

	var res struct {
		Results []struct{ ID, Outcome string }
	}
	raw := p.call(b, "POST", "/v1/contacts", f.contactsTok, scanContactTemplates)
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != 4 {
		b.Fatalf("contact templates: %v %s", err, raw)
	}
	var tpls []string
	for _, r := range res.Results {
		if r.Outcome != "created" {
			b.Fatalf("contact templates: %s", raw)
		}
		tpls = append(tpls, r.ID)
	}
	clone := (n - len(tpls)) / 2 &^ 3 // a clone of the first template, which has an email channel
	f.contactID = scanCloneContacts(b, p, contactsCust, tpls, n-len(tpls), clone)
	// The clones' index entries (channels; customers per partner), as
	// migrate writes them for documents stored without.
	if _, err := contacts.Reindex(context.Background(), p.db.Tenant(contactsCust)); err != nil {
		b.Fatal(err)
	}
	if _, err := p.svc.ReindexCustomers(context.Background()); err != nil {
		b.Fatal(err)
	}
	f.email, f.channel = scanCloneEmail(clone), scanCloneWorkEmail(clone)

	raw = p.call(b, "POST", "/v1/contacts", tlTok, `{"mode":"Add","matchBy":"email","data":[{"email":"tl@example.com","firstName":"Tim",
		"consents":[{"topic":"marketing.sms","value":"True","source":"signup-form"}]}]}`)
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != 1 || res.Results[0].ID == "" {
		b.Fatalf("timeline contact: %v %s", err, raw)
	}
	f.timelineOf = res.Results[0].ID
	for i := range 3 {
		p.call(b, "POST", "/v1/contacts/"+f.timelineOf+"/events", tlTok, fmt.Sprintf(
			`{"type":"order.shipped","message":"Order %d shipped to Tim","sourceUrl":"https://shop.example/o/%d","initiatedBy":"shop"}`, i, i))
	}
	scanCloneTimeline(b, p, timelineCust, f.timelineOf, n-5)

	// The fixture holds what it should.
	ctx := context.Background()
	count := func(c *mongo.Collection, filter bson.D, want int) {
		if got, err := c.CountDocuments(ctx, filter); err != nil || got != int64(want) {
			b.Fatalf("%s holds %d (%v), want %d", c.Name(), got, err, want)
		}
	}
	countT := func(c *store.Coll, filter bson.D, want int) {
		if got, err := c.Count(ctx, store.Range{Where: filter}); err != nil || got != int64(want) {
			b.Fatalf("%s holds %d (%v), want %d", c.Name(), got, err, want)
		}
	}
	// (The counts read every document: at 100,000 they take longer than
	// the fixture is worth; the inserts were counted as they went.)
	if n <= 10000 {
		count(p.db.Control.Collection("customers"), bson.D{}, n)
		count(p.db.Control.Collection("customers"), bson.D{{Key: "partnerId", Value: p.partnerA.ID}}, n/2)
		countT(p.db.Tenant(contactsCust).Collection("contacts"), bson.D{}, n)
		countT(p.db.Tenant(timelineCust).Collection("timeline"), bson.D{{Key: "contactId", Value: f.timelineOf}}, n)
		countT(p.db.Tenant(timelineCust).Collection("timeline"), bson.D{}, n)
	}
	// A cursor 90% down each paged list, walked to with the largest pages.
	f.deep, f.skipped = map[string]string{}, map[string]int{}
	for _, r := range scanRoutes {
		if base, ok := strings.CutSuffix(r.name, "-deep"); ok {
			for _, br := range scanRoutes {
				if br.name == base {
					f.deep[r.name], f.skipped[r.name] = scanWalk(b, f, br, br.matches(f)*9/10)
				}
			}
		}
	}
	b.Logf("fixture of %d built in %v", n, time.Since(start).Round(time.Millisecond))
	return f
}

// scanWalk follows a list's cursors, in the largest pages (small ones on
// a small fixture), while skip items are not yet behind, and returns the
// cursor there and how many items it is past.
func scanWalk(b *testing.B, f *scanFixture, r scanRoute, skip int) (string, int) {
	key, path := r.req(f)
	size := 200
	if skip < 2000 {
		size = 10
	}
	path = strings.Replace(path, "limit=50", fmt.Sprintf("limit=%d", size), 1)
	cursor := ""
	seen := 0
	for ; seen+size <= skip; seen += size {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *string           `json:"nextCursor"`
		}
		raw := f.p.call(b, "GET", p, key, "")
		if err := json.Unmarshal(raw, &page); err != nil || len(page.Items) != size || page.NextCursor == nil {
			b.Fatalf("walking %s at %d: %v %.300s", r.name, seen, err, raw)
		}
		cursor = *page.NextCursor
	}
	return cursor, seen
}

// scanFind reads documents raw.
func scanFind(b *testing.B, c *mongo.Collection, filter bson.D) []bson.D {
	ctx := context.Background()
	cur, err := c.Find(ctx, filter)
	if err != nil {
		b.Fatal(err)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		b.Fatal(err)
	}
	if len(docs) == 0 {
		b.Fatalf("nothing in %s matches %v", c.Name(), filter)
	}
	return docs
}

// scanFindT reads a customer's documents (logical ids) that match filter.
func scanFindT(b *testing.B, c *store.Coll, filter bson.D) []bson.D {
	docs, err := store.All[bson.D](context.Background(), c, store.Range{Where: filter})
	if err != nil {
		b.Fatal(err)
	}
	if len(docs) == 0 {
		b.Fatalf("nothing in %s matches %v", c.Name(), filter)
	}
	return docs
}

// scanInsertT inserts a customer's docs in batches.
func scanInsertT(b *testing.B, c *store.Coll, docs []any) {
	for lo := 0; lo < len(docs); lo += 5000 {
		if err := c.InsertMany(context.Background(), docs[lo:min(lo+5000, len(docs))]); err != nil {
			b.Fatalf("fill %s: %v", c.Name(), err)
		}
	}
}

// scanTimelineKey is the storage key of a timeline item (contacts'
// timelineKey): its contact, its time in ms from year 1, its id.
func scanTimelineKey(contactID string, at time.Time, itemID string) string {
	return contactID + "/" + store.TimeKey(at) + "/" + itemID
}

// scanInsert inserts docs in batches.
func scanInsert(b *testing.B, c *mongo.Collection, docs []any) {
	for lo := 0; lo < len(docs); lo += 5000 {
		if _, err := c.InsertMany(context.Background(), docs[lo:min(lo+5000, len(docs))]); err != nil {
			b.Fatalf("fill %s: %v", c.Name(), err)
		}
	}
}

func scanGet(d bson.D, key string) any {
	for _, e := range d {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// scanSet returns a copy of d with key set to v (in place if present).
func scanSet(d bson.D, key string, v any) bson.D {
	out := make(bson.D, len(d), len(d)+1)
	copy(out, d)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = v
			return out
		}
	}
	return append(out, bson.E{Key: key, Value: v})
}

func scanBytes(b *testing.B, v any) []byte {
	bin, ok := v.(bson.Binary)
	if !ok {
		b.Fatalf("not binary: %T %v", v, v)
	}
	return bin.Data
}

// scanSeal seals plain for field f with cipher c.
func scanSeal(b *testing.B, c *crypto.Cipher, f crypto.Field, plain []byte) []byte {
	out, err := c.Seal(f, plain)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func scanCipher(b *testing.B, p *scanPlatform, customerID string) *crypto.Cipher {
	c, err := p.keyring.Cipher(context.Background(), customerID)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func scanCustomerField(id, name string) crypto.Field {
	return crypto.Field{Collection: "customers", DocumentID: id, Name: name}
}

// scanCloneCustomers inserts nA copies of customer tpl for partner A and nB
// for partner B, interleaved: each with its own key (keyring.Create), space,
// Twilio account SID, and label, contact info and auth token sealed for it.
func scanCloneCustomers(b *testing.B, p *scanPlatform, tpl string, nA, nB int) {
	ctx := context.Background()
	src := scanFind(b, p.db.Control.Collection("customers"), bson.D{{Key: "_id", Value: tpl}})[0]
	tc := scanCipher(b, p, tpl)
	info, _ := scanGet(src, "contactInfo").(bson.D)
	tw, _ := scanGet(src, "twilio").(bson.D)
	if info == nil || tw == nil {
		b.Fatalf("template customer has no contact info or twilio: %v", src)
	}
	infoPlain, err := tc.Open(scanCustomerField(tpl, "contactInfo"), scanBytes(b, scanGet(info, "sealed")))
	if err != nil {
		b.Fatal(err)
	}
	tokenPlain, err := tc.Open(scanCustomerField(tpl, "twilio.authToken"), scanBytes(b, scanGet(tw, "authToken")))
	if err != nil {
		b.Fatal(err)
	}
	partners := make([]string, 0, nA+nB)
	for a, bb := nA, nB; a+bb > 0; {
		if a > 0 {
			partners, a = append(partners, p.partnerA.ID), a-1
		}
		if bb > 0 {
			partners, bb = append(partners, p.partnerB.ID), bb-1
		}
	}
	ids := make([]string, len(partners))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	// Keys: an age wrap and an insert each, on two workers.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += 2 {
				if err := p.keyring.Create(ctx, ids[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	docs := make([]any, len(ids))
	for i, id := range ids {
		c := scanCipher(b, p, id)
		space := fmt.Sprintf("fixture-%05d", i)
		sid := make([]byte, 16)
		rand.Read(sid)
		d := scanSet(src, "_id", id)
		d = scanSet(d, "partnerId", partners[i])
		d = scanSet(d, "space", space)
		d = scanSet(d, "label", scanSeal(b, c, scanCustomerField(id, "label"), []byte("Label "+space)))
		d = scanSet(d, "contactInfo", scanSet(info, "sealed", scanSeal(b, c, scanCustomerField(id, "contactInfo"), infoPlain)))
		t := scanSet(tw, "accountSid", "AC"+hex.EncodeToString(sid))
		d = scanSet(d, "twilio", scanSet(t, "authToken", scanSeal(b, c, scanCustomerField(id, "twilio.authToken"), tokenPlain)))
		docs[i] = d
	}
	scanInsert(b, p.db.Control.Collection("customers"), docs)
}

func scanCloneEmail(i int) string     { return fmt.Sprintf("clone%05d@example.com", i) }
func scanCloneWorkEmail(i int) string { return fmt.Sprintf("clone%05d@work.example", i) }

// scanCloneContacts inserts n copies of the contacts tpls (cycling) into
// the customer's database: the contact document (personal data with the
// clone's own email, phone, crmId, externalId and channel addresses, sealed
// for it; its blind indexes and channel indexes; its pending timeline items
// with new ids), its claim, its lookup entries and its timeline items. It
// returns the id of clone number want.
func scanCloneContacts(b *testing.B, p *scanPlatform, customerID string, tpls []string, n, want int) string {
	cdb := p.db.Tenant(customerID)
	c := scanCipher(b, p, customerID)
	type template struct {
		doc, claim bson.D
		lookups    []bson.D
		personal   []byte
		pending    []bson.D
		payloads   [][]byte
	}
	var ts []template
	for _, id := range tpls {
		var t template
		if err := cdb.Collection("contacts").FindID(context.Background(), id).Decode(&t.doc); err != nil {
			b.Fatal(err)
		}
		t.claim = scanFindT(b, cdb.Collection("contact_claims"), bson.D{{Key: "docId", Value: id}})[0]
		t.lookups = scanFindT(b, cdb.Collection("lookups"), bson.D{{Key: "body.contactId", Value: id}})
		var err error
		if t.personal, err = c.Open(crypto.Field{Collection: "contacts", DocumentID: id, Name: "personal"}, scanBytes(b, scanGet(t.doc, "sealed"))); err != nil {
			b.Fatal(err)
		}
		pend, _ := scanGet(t.doc, "pending").(bson.A)
		if len(pend) == 0 {
			b.Fatalf("template contact %s has no pending items", id)
		}
		for _, it := range pend {
			it := it.(bson.D)
			itemID, _ := scanGet(it, "_id").(string)
			pl, err := c.Open(crypto.Field{Collection: "timeline", DocumentID: itemID, Name: "payload"}, scanBytes(b, scanGet(it, "sealed")))
			if err != nil {
				b.Fatal(err)
			}
			t.pending, t.payloads = append(t.pending, it), append(t.payloads, pl)
		}
		ts = append(ts, t)
	}
	var docs, claims, lookups, timeline []any
	wantID := ""
	for i := range n {
		t := ts[i%len(ts)]
		id := uuid.Must(uuid.NewV7()).String()
		if i == want {
			wantID = id
		}
		vals := map[string]string{
			contacts.KeyEmail: scanCloneEmail(i), contacts.KeyPhone: fmt.Sprintf("+1416%07d", 2000000+i),
			contacts.KeyCrmID: fmt.Sprintf("crm-clone-%d", i), contacts.KeyExternalID: fmt.Sprintf("ext-clone-%d", i),
		}
		var pers map[string]any
		if err := json.Unmarshal(t.personal, &pers); err != nil {
			b.Fatal(err)
		}
		for k, v := range vals {
			if _, ok := pers[k]; ok {
				pers[k] = v
			}
		}
		var chIdx bson.A
		seen := map[string]bool{}
		chs, _ := pers["channels"].([]any)
		for _, ch := range chs {
			m := ch.(map[string]any)
			if m["type"] == "email" {
				m["address"] = scanCloneWorkEmail(i)
			} else {
				m["address"] = vals[contacts.KeyPhone]
			}
			if k := m["type"].(string) + ":" + m["address"].(string); !seen[k] {
				seen[k] = true
				chIdx = append(chIdx, c.BlindIndex("channel", k))
			}
		}
		plain, err := json.Marshal(pers)
		if err != nil {
			b.Fatal(err)
		}
		var idx bson.D
		tIdx, _ := scanGet(t.doc, "idx").(bson.D)
		for _, e := range tIdx {
			idx = append(idx, bson.E{Key: e.Key, Value: c.BlindIndex(e.Key, vals[e.Key])})
		}
		var pending bson.A
		for k, it := range t.pending {
			itemID := uuid.Must(uuid.NewV7()).String()
			sealed, err := c.Seal(crypto.Field{Collection: "timeline", DocumentID: itemID, Name: "payload"}, t.payloads[k])
			if err != nil {
				b.Fatal(err)
			}
			item := scanSet(scanSet(scanSet(it, "_id", itemID), "contactId", id), "sealed", sealed)
			pending = append(pending, item)
			at := scanGet(item, "at").(bson.DateTime).Time()
			timeline = append(timeline, scanSet(scanSet(item, "_id", scanTimelineKey(id, at, itemID)), "itemId", itemID))
		}
		sealed, err := c.Seal(crypto.Field{Collection: "contacts", DocumentID: id, Name: "personal"}, plain)
		if err != nil {
			b.Fatal(err)
		}
		d := scanSet(t.doc, "_id", id)
		d = scanSet(d, "sealed", sealed)
		d = scanSet(d, "idx", idx)
		if len(chIdx) > 0 {
			d = scanSet(d, "channelIdx", chIdx)
		}
		d = scanSet(d, "pending", pending)
		docs = append(docs, d)
		version, _ := scanGet(t.doc, "version").(int64)
		cl := scanSet(t.claim, "_id", store.ClaimID(id, version))
		cl = scanSet(cl, "docId", id)
		claims = append(claims, scanSet(cl, "state", d))
		for _, l := range t.lookups {
			name, _ := scanGet(l, "name").(string)
			kind, _, _ := strings.Cut(name, ":")
			idxOf, _ := scanGet(idx, kind).([]byte)
			if idxOf == nil {
				b.Fatalf("template lookup %s has no index in the clone", name)
			}
			name = kind + ":" + base64.RawURLEncoding.EncodeToString(idxOf)
			body, _ := scanGet(l, "body").(bson.D)
			l = scanSet(scanSet(l, "_id", store.GenID(name, 1)), "name", name)
			lookups = append(lookups, scanSet(l, "body", scanSet(body, "contactId", id)))
		}
	}
	scanInsertT(b, cdb.Collection("contact_claims"), claims)
	scanInsertT(b, cdb.Collection("contacts"), docs)
	scanInsertT(b, cdb.Collection("lookups"), lookups)
	scanInsertT(b, cdb.Collection("timeline"), timeline)
	if wantID == "" {
		b.Fatalf("clone %d of %d", want, n)
	}
	return wantID
}

// scanCloneTimeline inserts n copies of the contact's timeline items
// (cycling), each with a new id, its payload sealed for it, and older
// times: one second apart, before the oldest real item.
func scanCloneTimeline(b *testing.B, p *scanPlatform, customerID, contactID string, n int) {
	coll := p.db.Tenant(customerID).Collection("timeline")
	c := scanCipher(b, p, customerID)
	items := scanFindT(b, coll, bson.D{{Key: "contactId", Value: contactID}})
	payloads := make([][]byte, len(items))
	oldest := time.Now()
	for k, it := range items {
		id, _ := scanGet(it, "itemId").(string)
		var err error
		if payloads[k], err = c.Open(crypto.Field{Collection: "timeline", DocumentID: id, Name: "payload"}, scanBytes(b, scanGet(it, "sealed"))); err != nil {
			b.Fatal(err)
		}
		if at := scanGet(it, "at").(bson.DateTime).Time(); at.Before(oldest) {
			oldest = at
		}
	}
	docs := make([]any, n)
	for i := range n {
		k := i % len(items)
		id := uuid.Must(uuid.NewV7()).String()
		sealed, err := c.Seal(crypto.Field{Collection: "timeline", DocumentID: id, Name: "payload"}, payloads[k])
		if err != nil {
			b.Fatal(err)
		}
		at := oldest.Add(-time.Duration(i+1) * time.Second)
		d := scanSet(scanSet(items[k], "_id", scanTimelineKey(contactID, at, id)), "itemId", id)
		d = scanSet(d, "at", bson.NewDateTimeFromTime(at))
		docs[i] = scanSet(d, "sealed", sealed)
	}
	scanInsertT(b, coll, docs)
}

// scanRoute is one measured request: key and path on a fixture, and how
// many items match it there (the page holds up to 50, with a next page
// when more match).
type scanRoute struct {
	name    string
	req     func(f *scanFixture) (key, path string)
	matches func(f *scanFixture) int
}

var scanRoutes = []scanRoute{
	{"customers", func(f *scanFixture) (string, string) {
		return f.p.keyA, "/v1/customers?limit=50"
	}, func(f *scanFixture) int { return f.n / 2 }},
	{"contacts", func(f *scanFixture) (string, string) {
		return f.contactsTok, "/v1/contacts?limit=50"
	}, func(f *scanFixture) int { return f.n }},
	{"channel", func(f *scanFixture) (string, string) {
		return f.contactsTok, "/v1/contacts?limit=50&channel=" + f.channel
	}, func(*scanFixture) int { return 1 }},
	{"timeline", func(f *scanFixture) (string, string) {
		return f.timelineTok, "/v1/contacts/" + f.timelineOf + "/timeline?limit=50"
	}, func(f *scanFixture) int { return f.n }},
	{"customers-deep", func(f *scanFixture) (string, string) {
		return f.p.keyA, "/v1/customers?limit=50&cursor=" + f.deep["customers-deep"]
	}, func(f *scanFixture) int { return f.n/2 - f.skipped["customers-deep"] }},
	{"contacts-deep", func(f *scanFixture) (string, string) {
		return f.contactsTok, "/v1/contacts?limit=50&cursor=" + f.deep["contacts-deep"]
	}, func(f *scanFixture) int { return f.n - f.skipped["contacts-deep"] }},
	{"timeline-deep", func(f *scanFixture) (string, string) {
		return f.timelineTok, "/v1/contacts/" + f.timelineOf + "/timeline?limit=50&cursor=" + f.deep["timeline-deep"]
	}, func(f *scanFixture) int { return f.n - f.skipped["timeline-deep"] }},
	{"email", func(f *scanFixture) (string, string) {
		return f.contactsTok, "/v1/contacts?limit=50&email=" + f.email
	}, func(*scanFixture) int { return 1 }},
}

// scanCheck sends a route's request once and checks its answer.
func scanCheck(b *testing.B, f *scanFixture, r scanRoute) {
	key, path := r.req(f)
	raw := f.p.call(b, "GET", path, key, "")
	var page struct {
		Items []struct {
			ID    string  `json:"id"`
			Label *string `json:"label"`
		} `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
	if err := json.Unmarshal(raw, &page); err != nil || len(page.Items) != min(r.matches(f), 50) ||
		(page.NextCursor != nil && *page.NextCursor != "") != (r.matches(f) > 50) {
		b.Fatalf("%s at %d: %v, %d items: %.400s", r.name, f.n, err, len(page.Items), raw)
	}
	switch r.name {
	case "customers", "customers-deep":
		for _, it := range page.Items {
			if it.Label == nil || !strings.HasPrefix(*it.Label, "Label ") {
				b.Fatalf("customer %s without its label: %.400s", it.ID, raw)
			}
		}
	case "channel", "email":
		if page.Items[0].ID != f.contactID {
			b.Fatalf("%s found %s, want %s", r.name, page.Items[0].ID, f.contactID)
		}
	}
}

// BenchmarkScan measures one request of each route on the fixtures of 100
// and 10,000 items, alternating which goes first, and reports ms/op at each
// size and the ratio 10,000/100 (ns/op is the time of both requests). It
// then prints a table and the linear envelope: the sizes at which
// GET /v1/customers and GET /v1/contacts would take 100 ms.
//
// The fixtures take a while to build (keys for 10,000 customers, 10,000
// contacts): run it with -benchtime=Nx.
func BenchmarkScan(b *testing.B) {
	var fx [2]*scanFixture
	for s, n := range scanSizes {
		fx[s] = buildScanFixture(b, n)
	}
	results := map[string][2]float64{}
	for _, r := range scanRoutes {
		b.Run(r.name, func(b *testing.B) {
			for _, f := range fx {
				scanCheck(b, f, r) // and warms caches: keys, statuses, indexes ensured, pending items copied
			}
			var took [2]time.Duration
			n := 0
			for b.Loop() {
				for k := range fx {
					s := (n + k) % len(fx)
					key, path := r.req(fx[s])
					start := time.Now()
					fx[s].p.call(b, "GET", path, key, "")
					took[s] += time.Since(start)
				}
				n++
			}
			var ms [2]float64
			for s := range ms {
				ms[s] = float64(took[s].Nanoseconds()) / 1e6 / float64(n)
				b.ReportMetric(ms[s], fmt.Sprintf("%d-ms/op", scanSizes[s]))
			}
			b.ReportMetric(ms[1]/ms[0], "ratio")
			results[r.name] = ms
		})
	}
	scanReport(os.Stdout, results)
}

func scanReport(w io.Writer, results map[string][2]float64) {
	paths := map[string]string{
		"customers":      "GET /v1/customers?limit=50 (customers on the platform, half per partner)",
		"contacts":       "GET /v1/contacts?limit=50 (contacts in the customer)",
		"channel":        "GET /v1/contacts?channel=… (contacts in the customer)",
		"timeline":       "GET /v1/contacts/{id}/timeline?limit=50 (items on the contact)",
		"email":          "GET /v1/contacts?email=… (_id-served reference)",
		"customers-deep": "… the same, a page 90% down",
		"contacts-deep":  "… the same, a page 90% down",
		"timeline-deep":  "… the same, a page 90% down",
	}
	fmt.Fprintf(w, "\n%-74s %10s %10s %8s %14s\n", "route (size means)", fmt.Sprintf("%d ms/op", scanSizes[0]), fmt.Sprintf("%d ms/op", scanSizes[1]), "ratio", "ms per 1k more")
	for _, r := range scanRoutes {
		ms, ok := results[r.name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-74s %10.3f %10.3f %8.2f %14.3f\n", paths[r.name], ms[0], ms[1], ms[1]/ms[0],
			(ms[1]-ms[0])/float64(scanSizes[1]-scanSizes[0])*1000)
	}
	// Linear through the two measured points: t(n) = t0 + (n-n0)·slope.
	for _, e := range []struct{ route, what string }{{"customers", "customers on the platform"}, {"contacts", "contacts in one customer"}} {
		ms, ok := results[e.route]
		if !ok {
			continue
		}
		slope := (ms[1] - ms[0]) / float64(scanSizes[1]-scanSizes[0])
		if slope <= 0 {
			fmt.Fprintf(w, "envelope %s: no growth measured\n", e.route)
			continue
		}
		at := float64(scanSizes[0]) + (100-ms[0])/slope
		fmt.Fprintf(w, "envelope %s: ~100 ms/request at ~%.0f %s (linear through the two points)\n", e.route, at, e.what)
	}
}
