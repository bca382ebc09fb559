package contacts

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// benchService is a contacts service on fresh databases of the embedded
// engine, every customer under the same test key.
func benchService(b *testing.B) *Service {
	db := storetest.MustOpen(b)
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-00000000000b", "k1", bytes.Repeat([]byte{3}, 32))
	if err != nil {
		b.Fatal(err)
	}
	benchDB = db
	return &Service{
		Cipher: func(context.Context, string) (*crypto.Cipher, error) { return c, nil },
		Tenant: db.Tenant,
	}
}

// benchDB is the store of the last benchService, for bare baselines.
var benchDB *store.DB

// benchOpen opens the handle of one customer and creates the collections an
// upsert writes to, so that no timed write pays for creating a collection.
func benchOpen(b *testing.B, s *Service, customerID string) *Handle {
	h, err := s.Open(b.Context(), customerID)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range benchUpsertCollections {
		benchCreate(b, benchDB.DataDatabase(customerID), name)
	}
	return h
}

func benchHandle(b *testing.B) *Handle {
	return benchOpen(b, benchService(b), "0193a0c4-1111-7000-8000-00000000000b")
}

// benchCreate creates a collection unless it exists.
func benchCreate(b *testing.B, db *mongo.Database, name string) {
	names, err := db.ListCollectionNames(b.Context(), bson.D{{Key: "name", Value: name}})
	if err != nil {
		b.Fatal(err)
	}
	if len(names) == 0 {
		if err := db.CreateCollection(b.Context(), name); err != nil {
			b.Fatal(err)
		}
	}
}

// benchInput is contact i of batch: an email (the match key), a phone, two
// names and two custom attributes. Phones are +1 416 5xx xxxx, unique for
// batch < 5000.
func benchInput(batch, i int) Input {
	s := func(v string) Field[string] { return Field[string]{Set: true, Value: v} }
	return Input{
		Email: s(fmt.Sprintf("user%d-%d@example.com", batch, i)), Phone: s(fmt.Sprintf("+1416%07d", 5000000+batch*1000+i)),
		FirstName: s("Ann"), LastName: s("Example"),
		CustomAttributes: Field[[]Attribute]{Set: true, Value: []Attribute{{"tier", "gold"}, {"city", "Toronto"}}},
	}
}

func benchBatch(batch int) []Input {
	items := make([]Input, 1000)
	for i := range items {
		items[i] = benchInput(batch, i)
	}
	return items
}

// The collections an upsert writes, and how many documents it writes to
// each per new contact of benchInput, counted from the code (batch.go):
//   - lookups: one entry per unique value, email (the match key, claimFresh
//     in step 1) and phone (claimOthers in step 2);
//   - contact_claims and contacts: the first claim and the document
//     (store.Versioned.CreateMany);
//   - timeline: the contact.created item (no consents, so no other item).
//
// That is 5,000 documents for 1,000 contacts, in five InsertMany calls
// (lookups twice). BenchmarkUpsert1000 checks these counts on its first
// batch.
var (
	benchUpsertCollections = []string{"lookups", "contact_claims", "contacts", "timeline"}
	benchDocsPerContact    = map[string]int{"lookups": 2, "contact_claims": 1, "contacts": 1, "timeline": 1}
)

// BenchmarkUpsert1000 upserts a batch of 1,000 new contacts (AddOrUpdate by
// email, each with a phone: normalising, sealing, blind indexes, unique
// claims, claims, documents, timeline) and, as its same-run baseline, writes
// the same number of documents the upsert writes (5,000, see
// benchDocsPerContact) with bare InsertMany calls, one per collection, into
// collections with the same indexes in the same database. The baseline
// documents are copies (new _ids) of the documents the upsert just wrote, so
// they have their size. It reports both, the number of documents and the
// ratio (target ≤ 1.2).
func BenchmarkUpsert1000(b *testing.B) {
	h := benchHandle(b)
	ctx := b.Context()
	bare := map[string]*mongo.Collection{}
	for _, name := range benchUpsertCollections {
		raw := benchDB.DataDatabase(h.db.ID())
		benchCreate(b, raw, "bare_"+name)
		bare[name] = raw.Collection("bare_" + name)
	}
	if _, err := bare["contacts"].Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "channelIdx", Value: 1}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := bare["timeline"].Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "contactId", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}}); err != nil {
		b.Fatal(err)
	}
	count := func() map[string]int64 {
		out := map[string]int64{}
		for _, name := range benchUpsertCollections {
			n, err := h.db.Collection(name).Count(ctx, store.Range{})
			if err != nil {
				b.Fatal(err)
			}
			out[name] = n
		}
		return out
	}
	docs := 0
	for _, name := range benchUpsertCollections {
		docs += 1000 * benchDocsPerContact[name]
	}
	var ours, base time.Duration
	batch := 0
	for b.Loop() {
		items := benchBatch(batch)
		var before map[string]int64
		if batch == 0 {
			before = count()
		}
		start := time.Now()
		res, err := h.Upsert(ctx, ModeAddOrUpdate, KeyEmail, items)
		if err != nil || res[999].Outcome != "created" {
			b.Fatalf("upsert: %v %+v", err, res[999])
		}
		ours += time.Since(start)
		if batch == 0 {
			after := count()
			for _, name := range benchUpsertCollections {
				if got := after[name] - before[name]; got != int64(1000*benchDocsPerContact[name]) {
					b.Fatalf("the upsert wrote %d documents to %s, benchDocsPerContact says %d: count again", got, name, 1000*benchDocsPerContact[name])
				}
			}
		}

		// The same documents with new _ids (strings of the same length).
		tpl := benchWrittenFor(b, h, res[500].ID, items[500])
		writes := map[string][]any{}
		for _, name := range benchUpsertCollections {
			for i := range 1000 * benchDocsPerContact[name] {
				t := tpl[name][i%len(tpl[name])]
				id, _ := benchField(t, "_id").(string)
				writes[name] = append(writes[name], benchWithID(t, benchFreshLike(id)))
			}
		}
		start = time.Now()
		for _, name := range benchUpsertCollections {
			if _, err := bare[name].InsertMany(ctx, writes[name]); err != nil {
				b.Fatal(err)
			}
		}
		base += time.Since(start)
		batch++
	}
	b.ReportMetric(float64(ours.Nanoseconds())/1e6/float64(batch), "upsert-ms/op")
	b.ReportMetric(float64(base.Nanoseconds())/1e6/float64(batch), "insertmany-ms/op")
	b.ReportMetric(float64(docs), "docs/op")
	b.ReportMetric(float64(ours)/float64(base), "ratio")
}

// benchWrittenFor reads back what an upsert wrote for one new contact, by
// collection: its lookup entries, its claim, its document and its timeline.
func benchWrittenFor(b *testing.B, h *Handle, id string, in Input) map[string][]bson.D {
	ctx := b.Context()
	byID := func(c *store.Coll, id string) bson.D {
		var d bson.D
		if err := c.FindID(ctx, id).Decode(&d); err != nil {
			b.Fatalf("%s %v: %v", c.Name(), id, err)
		}
		return d
	}
	doc := byID(h.contacts(), id)
	pending, _ := benchField(doc, "pending").(bson.A)
	if len(pending) != 1 {
		b.Fatalf("contact %s has %d pending items, want 1", id, len(pending))
	}
	itemID, _ := benchField(pending[0].(bson.D), "_id").(string)
	itemAt, _ := benchField(pending[0].(bson.D), "at").(bson.DateTime)
	return map[string][]bson.D{
		"lookups": {
			byID(h.lookups(), store.GenID(lookupName(KeyEmail, h.index(KeyEmail, in.Email.Value)), 1)),
			byID(h.lookups(), store.GenID(lookupName(KeyPhone, h.index(KeyPhone, in.Phone.Value)), 1)),
		},
		"contact_claims": {byID(h.db.Collection("contact_claims"), store.ClaimID(id, 1))},
		"contacts":       {doc},
		"timeline":       {byID(h.timeline(), timelineKey(id, itemAt.Time(), itemID))},
	}
}

// benchFreshLike returns a new unique string of the length of id.
func benchFreshLike(id string) string {
	u := strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
	for len(u) < len(id) {
		u += strings.ReplaceAll(uuid.Must(uuid.NewRandom()).String(), "-", "")
	}
	return u[:len(id)]
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

// benchWithID returns a copy of d with another _id.
func benchWithID(d bson.D, id string) bson.D {
	out := make(bson.D, len(d))
	copy(out, d)
	for i := range out {
		if out[i].Key == "_id" {
			out[i].Value = id
		}
	}
	return out
}

// benchReplaced copies v, replacing strings and binary values found in repl
// (binary values keyed by their bytes).
func benchReplaced(v any, repl map[string]any) any {
	switch x := v.(type) {
	case bson.D:
		out := make(bson.D, len(x))
		for i, e := range x {
			out[i] = bson.E{Key: e.Key, Value: benchReplaced(e.Value, repl)}
		}
		return out
	case bson.A:
		out := make(bson.A, len(x))
		for i, e := range x {
			out[i] = benchReplaced(e, repl)
		}
		return out
	case string:
		if r, ok := repl[x]; ok {
			return r
		}
	case bson.Binary:
		if r, ok := repl[string(x.Data)]; ok {
			return bson.Binary{Subtype: x.Subtype, Data: r.([]byte)}
		}
	}
	return v
}

// benchLargeContacts is how many contacts the large customer of
// BenchmarkUpsertIntoLargeCustomer holds.
const benchLargeContacts = 100000

// benchFillContacts makes h's customer hold n contacts: one upserted for real
// (the template), and n-1 copies of everything the upsert wrote for it
// (lookup entries, claim, document, timeline item), inserted with
// InsertMany. Each copy is a valid contact of its own: new ids, its own
// email and phone (fixture-<j>@example.com, +1 416 3xx xxxx), their blind
// indexes in its document and in its lookup entries' names
// ("<kind>:<b64 blind index>#1"), and its person and timeline item sealed
// again under their new ids. A lookup of the last copy's email and its
// timeline check it.
func benchFillContacts(b *testing.B, h *Handle, n int) {
	ctx := b.Context()
	email := func(j int) string { return fmt.Sprintf("fixture-%d@example.com", j) }
	phone := func(j int) string { return fmt.Sprintf("+1416%07d", 3000000+j) }
	s := func(v string) Field[string] { return Field[string]{Set: true, Value: v} }
	in := benchInput(0, 0)
	in.Email, in.Phone = s(email(0)), s(phone(0))
	res, err := h.Upsert(ctx, ModeAddOrUpdate, KeyEmail, []Input{in})
	if err != nil || res[0].Outcome != "created" {
		b.Fatalf("template: %v %+v", err, res)
	}
	tplID := res[0].ID
	tpl := benchWrittenFor(b, h, tplID, in)
	pending, _ := benchField(tpl["contacts"][0], "pending").(bson.A)
	itemID, _ := benchField(pending[0].(bson.D), "_id").(string)
	itemAt, _ := benchField(pending[0].(bson.D), "at").(bson.DateTime)
	sealedPerson := benchField(tpl["contacts"][0], "sealed").(bson.Binary).Data
	sealedItem := benchField(tpl["timeline"][0], "sealed").(bson.Binary).Data
	person, err := h.cipher.Open(personalField(tplID), sealedPerson)
	if err != nil {
		b.Fatal(err)
	}
	item, err := h.cipher.Open(timelineField(itemID), sealedItem)
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Contains(person, []byte(email(0))) || !bytes.Contains(person, []byte(phone(0))) {
		b.Fatalf("template person %s", person)
	}
	tplIdx := map[string][]byte{KeyEmail: h.index(KeyEmail, email(0)), KeyPhone: h.index(KeyPhone, phone(0))}

	const chunk = 10000
	inserted := map[string]int{}
	for lo := 1; lo < n; lo += chunk {
		out := map[string][]any{}
		for j := lo; j < min(lo+chunk, n); j++ {
			id, newItem := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
			p := bytes.Replace(bytes.Replace(person, []byte(email(0)), []byte(email(j)), 1), []byte(phone(0)), []byte(phone(j)), 1)
			sp, err := h.cipher.Seal(personalField(id), p)
			if err != nil {
				b.Fatal(err)
			}
			si, err := h.cipher.Seal(timelineField(newItem), item)
			if err != nil {
				b.Fatal(err)
			}
			repl := map[string]any{
				tplID: id, store.ClaimID(tplID, 1): store.ClaimID(id, 1), itemID: newItem,
				timelineKey(tplID, itemAt.Time(), itemID): timelineKey(id, itemAt.Time(), newItem),
				string(sealedPerson):                      sp, string(sealedItem): si,
			}
			for kind, v := range map[string]string{KeyEmail: email(j), KeyPhone: phone(j)} {
				idx := h.index(kind, v)
				oldName, newName := lookupName(kind, tplIdx[kind]), lookupName(kind, idx)
				repl[string(tplIdx[kind])] = idx
				repl[oldName], repl[store.GenID(oldName, 1)] = newName, store.GenID(newName, 1)
			}
			for _, name := range benchUpsertCollections {
				for _, d := range tpl[name] {
					out[name] = append(out[name], benchReplaced(d, repl))
				}
			}
		}
		for _, name := range benchUpsertCollections {
			if err := h.db.Collection(name).InsertMany(ctx, out[name]); err != nil {
				b.Fatalf("fill %s: %v", name, err)
			}
			inserted[name] += len(out[name])
		}
	}
	for _, name := range benchUpsertCollections {
		if want := (n - 1) * benchDocsPerContact[name]; inserted[name] != want {
			b.Fatalf("inserted %d documents into %s, want %d", inserted[name], name, want)
		}
	}
	found, err := h.Lookup(ctx, KeyEmail, email(n-1))
	if err != nil || len(found) != 1 || found[0].Phone == nil || *found[0].Phone != phone(n-1) {
		b.Fatalf("lookup of the last fixture contact: %v %+v", err, found)
	}
	if tl, _, err := h.Timeline(ctx, found[0].ID, 10, ""); err != nil || len(tl) != 1 || tl[0].Type != ItemCreated {
		b.Fatalf("timeline of the last fixture contact: %v %+v", err, tl)
	}
}

// BenchmarkUpsertIntoLargeCustomer upserts a batch of 1,000 new contacts
// (as BenchmarkUpsert1000) into a customer that holds 100,000 contacts and,
// as its same-run baseline, into one that held none when the run began (it
// grows by 1,000 a batch), alternating which goes first. It reports ms/op
// of each and the ratio large/empty (target ≤ 1.2).
//
// The large customer is filled once per run, before the timed loop (about
// a minute; b.Loop runs the body once): run it with -benchtime=Nx.
func BenchmarkUpsertIntoLargeCustomer(b *testing.B) {
	s := benchService(b)
	ctx := b.Context()
	hs := [2]*Handle{
		benchOpen(b, s, "0193a0c4-2222-7000-8000-00000000000e"), // empty
		benchOpen(b, s, "0193a0c4-3333-7000-8000-00000000000f"), // large
	}
	benchFillContacts(b, hs[1], benchLargeContacts)
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		items := benchBatch(n)
		for k := range hs {
			c := (n + k) % len(hs)
			start := time.Now()
			res, err := hs[c].Upsert(ctx, ModeAddOrUpdate, KeyEmail, items)
			if err != nil || res[999].Outcome != "created" {
				b.Fatalf("upsert: %v %+v", err, res[999])
			}
			took[c] += time.Since(start)
		}
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(n) }
	b.ReportMetric(ms(took[0]), "empty-ms/op")
	b.ReportMetric(ms(took[1]), "100k-ms/op")
	b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
}

// BenchmarkLookupByEmail finds a contact by email (normalise, blind index,
// lookup entry, contact, open) with 1,000 contacts stored, against its
// same-run baseline: the two bare finds by _id that a lookup needs, of the
// lookup entry and of the contact, on the same engine. It reports both and
// the ratio (target ≤ 1.1).
func BenchmarkLookupByEmail(b *testing.B) {
	h := benchHandle(b)
	ctx := b.Context()
	items := benchBatch(0)
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, items)
	if err != nil {
		b.Fatal(err)
	}
	entries := make([]string, len(items))
	for i, in := range items {
		entries[i] = store.GenID(lookupName(KeyEmail, h.index(KeyEmail, in.Email.Value)), 1)
	}
	var ours, bare time.Duration
	n := 0
	for b.Loop() {
		i := n % 1000
		start := time.Now()
		found, err := h.Lookup(ctx, KeyEmail, fmt.Sprintf("  USER0-%d@example.com ", i))
		if err != nil || len(found) != 1 || found[0].ID != res[i].ID {
			b.Fatalf("lookup: %v %d", err, len(found))
		}
		ours += time.Since(start)
		start = time.Now()
		var entry, doc bson.Raw
		if err := h.lookups().FindID(ctx, entries[i]).Decode(&entry); err != nil {
			b.Fatal(err)
		}
		if err := h.contacts().FindID(ctx, res[i].ID).Decode(&doc); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		n++
	}
	b.ReportMetric(float64(ours.Microseconds())/float64(n), "lookup-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "2-finds-by-id-µs")
	b.ReportMetric(float64(ours)/float64(bare), "ratio")
}
