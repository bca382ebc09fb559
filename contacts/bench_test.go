package contacts

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func benchHandle(b *testing.B) *Handle {
	db := storetest.MustOpen(b)
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-00000000000b", "k1", bytes.Repeat([]byte{3}, 32))
	if err != nil {
		b.Fatal(err)
	}
	s := &Service{
		Cipher:   func(context.Context, string) (*crypto.Cipher, error) { return c, nil },
		Database: db.Customer,
	}
	h, err := s.Open(b.Context(), "0193a0c4-1111-7000-8000-00000000000b")
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func benchInput(batch, i int) Input {
	s := func(v string) Field[string] { return Field[string]{Set: true, Value: v} }
	return Input{
		Email: s(fmt.Sprintf("user%d-%d@example.com", batch, i)), FirstName: s("Ann"), LastName: s("Example"),
		CrmID:            s(fmt.Sprintf("crm-%d-%d", batch, i)),
		CustomAttributes: Field[[]Attribute]{Set: true, Value: []Attribute{{"tier", "gold"}, {"city", "Toronto"}}},
	}
}

// BenchmarkUpsert1000 upserts a batch of 1,000 new contacts (sealing,
// blind indexes, unique claims, timeline) and, as its same-run baseline, the
// bare driver's InsertMany of 1,000 documents of the same size into the
// same engine; it reports both and the ratio.
func BenchmarkUpsert1000(b *testing.B) {
	h := benchHandle(b)
	ctx := b.Context()
	var ours, bare time.Duration
	batch := 0
	for b.Loop() {
		items := make([]Input, 1000)
		for i := range items {
			items[i] = benchInput(batch, i)
		}
		start := time.Now()
		res, err := h.Upsert(ctx, ModeAdd, KeyEmail, items)
		if err != nil || res[999].Outcome != "created" {
			b.Fatalf("upsert: %v %+v", err, res[999])
		}
		ours += time.Since(start)

		var doc contactDoc
		if err := h.contacts().FindOne(ctx, bson.D{{Key: "_id", Value: res[0].ID}}).Decode(&doc); err != nil {
			b.Fatal(err)
		}
		docs := make([]any, 1000)
		for i := range docs {
			d := doc
			d.ID = uuid.Must(uuid.NewV7()).String()
			docs[i] = d
		}
		start = time.Now()
		if _, err := h.db.Collection("bare").InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		batch++
	}
	b.ReportMetric(float64(ours.Milliseconds())/float64(batch), "upsert-ms/1000")
	b.ReportMetric(float64(bare.Milliseconds())/float64(batch), "insertmany-ms/1000")
	b.ReportMetric(float64(ours)/float64(bare), "ratio")
}

// BenchmarkLookupByEmail finds a contact by email (normalise, blind index,
// lookup entry, contact, open) against the bare driver's find by _id in the
// same collection, with 1,000 contacts stored.
func BenchmarkLookupByEmail(b *testing.B) {
	h := benchHandle(b)
	ctx := b.Context()
	items := make([]Input, 1000)
	for i := range items {
		items[i] = benchInput(0, i)
	}
	res, err := h.Upsert(ctx, ModeAdd, KeyEmail, items)
	if err != nil {
		b.Fatal(err)
	}
	var ours, bare time.Duration
	n := 0
	for b.Loop() {
		i := n % 1000
		start := time.Now()
		found, err := h.Lookup(ctx, KeyEmail, fmt.Sprintf("  USER0-%d@example.com ", i))
		if err != nil || len(found) != 1 {
			b.Fatalf("lookup: %v %d", err, len(found))
		}
		ours += time.Since(start)
		start = time.Now()
		var doc bson.Raw
		if err := h.contacts().FindOne(ctx, bson.D{{Key: "_id", Value: res[i].ID}}).Decode(&doc); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		n++
	}
	b.ReportMetric(float64(ours.Microseconds())/float64(n), "lookup-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "find-by-id-µs")
	b.ReportMetric(float64(ours)/float64(bare), "ratio")
}
