package tenants_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

// BenchmarkShred measures shredding a customer whose database holds 10 and
// 10,000 documents, in the same run, and reports:
//   - erase: key delete + SHREDDED mark, the crypto-erase that makes the data
//     unreadable (O(1) in the data);
//   - drop: dropping the customer's database afterwards (grows with the data);
//   - the ratios 10,000/10 of each.
//
// Each iteration sets up two customers (10,010 inserts, untimed): run it with
// -benchtime=Nx.
func BenchmarkShred(b *testing.B) {
	h := newHarness(b)
	ctx := b.Context()
	var dropStart time.Time
	var drop time.Duration
	svc := tenants.NewService(tenants.Config{
		Control: h.db.Control, Keyring: h.keyring, Twilio: h.client, Logger: storetest.Logger(), Now: h.clock.Now,
		Data: deleting{h.db, func(ctx context.Context, id string) (int64, error) {
			dropStart = time.Now()
			n, err := h.db.DeleteCustomerData(ctx, id)
			drop = time.Since(dropStart)
			return n, err
		}},
	})
	doc := bson.D{{Key: "sealed", Value: make([]byte, 200)}}
	sizes := [2]int{10, 10000}
	var erase, dropped [2]time.Duration
	for i := 0; b.Loop(); i++ {
		for s, n := range sizes {
			b.StopTimer()
			c := h.terminated(b, fmt.Sprintf("bench-%d-%d", i, n), 1)
			docs := make([]any, n)
			for j := range docs {
				docs[j] = doc
			}
			if err := h.db.Tenant(c.ID).Collection("contacts").InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			sum, err := svc.Purge(ctx, tenants.PurgeOptions{Now: *c.Retention.ShredAt}, func(r tenants.PurgeResult) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			})
			if err != nil || sum.Shredded != 1 {
				b.Fatalf("purge: %+v %v", sum, err)
			}
			erase[s] += dropStart.Sub(start)
			dropped[s] += drop
		}
	}
	n := float64(b.N)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	b.ReportMetric(us(erase[0]), "erase-10-µs")
	b.ReportMetric(us(erase[1]), "erase-10k-µs")
	b.ReportMetric(float64(erase[1])/float64(erase[0]), "erase-ratio")
	b.ReportMetric(us(dropped[0]), "drop-10-µs")
	b.ReportMetric(us(dropped[1]), "drop-10k-µs")
	b.ReportMetric(float64(dropped[1])/float64(dropped[0]), "drop-ratio")
}

// BenchmarkShredAmongOthers measures shredding a customer holding 10,000
// contact documents when the shared collections hold 1 other customer's
// data and when they hold 1,000 others' (100 documents each, 100,000 in
// all), in the same run, and reports both and their ratio (target ≤ 1.2):
// a shred deletes the customer's own ranges, whatever else is stored.
//
// Run: go test -run '^$' -bench ShredAmongOthers -benchtime 3x ./tenants/
func BenchmarkShredAmongOthers(b *testing.B) {
	doc := bson.D{{Key: "sealed", Value: make([]byte, 200)}}
	fill := func(h *harness, id string, n int) {
		docs := make([]any, n)
		for j := range docs {
			docs[j] = append(bson.D{{Key: "_id", Value: fmt.Sprintf("c%06d", j)}}, doc...)
		}
		for lo := 0; lo < n; lo += 5000 {
			if err := h.db.Tenant(id).Collection("contacts").InsertMany(b.Context(), docs[lo:min(lo+5000, n)]); err != nil {
				b.Fatal(err)
			}
		}
	}
	others := [2]int{1, 1000}
	var hs [2]*harness
	for s, n := range others {
		hs[s] = newHarness(b)
		for i := range n {
			fill(hs[s], fmt.Sprintf("0190a1b2-0000-7000-8000-%012d", i), 100)
		}
	}
	var took [2]time.Duration
	for i := 0; b.Loop(); i++ {
		for k := range hs {
			s := (i + k) % 2
			h := hs[s]
			b.StopTimer()
			c := h.terminated(b, fmt.Sprintf("among-%d-%d", i, s), 1)
			fill(h, c.ID, 10000)
			b.StartTimer()
			start := time.Now()
			sum, err := h.svc.Purge(b.Context(), tenants.PurgeOptions{Now: *c.Retention.ShredAt}, func(r tenants.PurgeResult) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			})
			took[s] += time.Since(start)
			if err != nil || sum.Shredded != 1 {
				b.Fatalf("purge: %+v %v", sum, err)
			}
			if n, err := h.db.CountCustomerData(b.Context(), c.ID); err != nil || n != 0 {
				b.Fatalf("%d documents left (%v)", n, err)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(took[0]), "with-1-other-ms")
	b.ReportMetric(ms(took[1]), "with-1000-others-ms")
	b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
}
