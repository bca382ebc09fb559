package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/store/storetest"
)

// BenchmarkIDRange measures one customer's newest 50 documents (a find of
// the _id range `<uuid>/` .. `<uuid>0`, sorted by _id descending, limit 50)
// in a collection of 2,000 and one of 200,000 documents, 200 per customer,
// in the same run, and reports the µs at each size and the ratio
// 200,000/2,000. With the third FerretDB patch (third_party/README.md) the
// range is read from the _id_ index and the ratio stays near 1; unpatched,
// every find scans and sorts the whole collection.
//
// ns/op is the time of both finds of an iteration. The collections are
// filled once (untimed, the 200,000 take a while). Run it with -benchtime=Nx.
func BenchmarkIDRange(b *testing.B) {
	db := storetest.MustOpen(b)
	ctx := b.Context()
	sizes := [2]int{2000, 200000}
	const perCustomer = 200
	payload := make([]byte, 200)
	var colls [2]*mongo.Collection
	var customers [2]string
	for s, n := range sizes {
		colls[s] = db.Control.Collection(fmt.Sprintf("idrange_%d", n))
		start := time.Now()
		docs := make([]any, 0, 10000)
		custs := make([]string, n/perCustomer)
		for i := range custs {
			custs[i] = uuid.NewString()
		}
		// Interleaved like real traffic: customer i%len(custs), message i/len(custs).
		for i := range n {
			id := fmt.Sprintf("%s/msg-%06d", custs[i%len(custs)], i/len(custs))
			docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: i}, {Key: "payload", Value: payload}})
			if len(docs) == cap(docs) || i == n-1 {
				if _, err := colls[s].InsertMany(ctx, docs); err != nil {
					b.Fatal(err)
				}
				docs = docs[:0]
			}
		}
		customers[s] = custs[len(custs)/2]
		b.Logf("filled %d documents in %v", n, time.Since(start).Round(time.Millisecond))
	}

	find := func(b *testing.B, c *mongo.Collection, cust string) {
		filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: cust + "/"}, {Key: "$lt", Value: cust + "0"}}}}
		cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(50))
		if err != nil {
			b.Fatal(err)
		}
		var got []bson.Raw
		if err := cur.All(ctx, &got); err != nil {
			b.Fatal(err)
		}
		if len(got) != 50 || got[0].Lookup("_id").StringValue() != fmt.Sprintf("%s/msg-%06d", cust, perCustomer-1) {
			b.Fatalf("got %d documents, first %v", len(got), got[0].Lookup("_id"))
		}
	}
	for s := range sizes { // warm up
		find(b, colls[s], customers[s])
	}

	var spent [2]time.Duration
	b.ResetTimer()
	for range b.N {
		for s := range sizes {
			start := time.Now()
			find(b, colls[s], customers[s])
			spent[s] += time.Since(start)
		}
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(us(spent[0]), "µs_2k")
	b.ReportMetric(us(spent[1]), "µs_200k")
	b.ReportMetric(float64(spent[1])/float64(spent[0]), "ratio_200k/2k")
}
