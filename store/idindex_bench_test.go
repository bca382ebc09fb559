package store_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store/storetest"
)

// BenchmarkIDAccess measures find, replace and delete by exact _id of the
// last-inserted document of a collection of 100 and of one of 10,000
// documents, in the same run, and reports per operation the µs at each size
// and the ratio 10,000/100. With the _id_ index used (third_party/FerretDB
// patch) the ratio stays near 1; unpatched, SQLite scans the table and it
// grows with the collection (> 10×).
//
// ns/op is the time of both accesses (100 and 10,000) of an iteration.
// The collections are filled once (untimed); delete re-inserts the document
// (untimed) so that every iteration deletes the last row again. Run it with
// -benchtime=Nx.
func BenchmarkIDAccess(b *testing.B) {
	db := storetest.MustOpen(b)
	ctx := b.Context()
	sizes := [2]int{100, 10000}
	payload := make([]byte, 200)
	doc := func(id string, v int) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "v", Value: v}, {Key: "payload", Value: payload}}
	}
	var colls [2]*mongo.Collection
	var lastIDs [2]string
	for s, n := range sizes {
		colls[s] = db.Control.Collection(fmt.Sprintf("idaccess_%d", n))
		docs := make([]any, n)
		for i := range docs {
			docs[i] = doc(fmt.Sprintf("0193a0c4-%08d-7000-8000-000000000000", i), i)
		}
		if _, err := colls[s].InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
		lastIDs[s] = fmt.Sprintf("0193a0c4-%08d-7000-8000-000000000000", n-1)
	}

	ops := []struct {
		name  string
		do    func(b *testing.B, c *mongo.Collection, id string, i int)
		reset func(b *testing.B, c *mongo.Collection, id string, i int) // untimed, may be nil
	}{
		{"find", func(b *testing.B, c *mongo.Collection, id string, _ int) {
			var got bson.Raw
			if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
				b.Fatal(err)
			}
		}, nil},
		{"replace", func(b *testing.B, c *mongo.Collection, id string, i int) {
			res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc(id, -i-1))
			if err != nil || res.MatchedCount != 1 {
				b.Fatalf("replace: %+v %v", res, err)
			}
		}, nil},
		{"delete", func(b *testing.B, c *mongo.Collection, id string, i int) {
			res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			if err != nil || res.DeletedCount != 1 {
				b.Fatalf("delete: %+v %v", res, err)
			}
		}, func(b *testing.B, c *mongo.Collection, id string, i int) {
			// Put it back: it becomes the last row again.
			if _, err := c.InsertOne(ctx, doc(id, i)); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			var took [2]time.Duration
			i := 0
			for ; b.Loop(); i++ {
				for s := range sizes {
					start := time.Now()
					op.do(b, colls[s], lastIDs[s], i)
					took[s] += time.Since(start)
					if op.reset != nil {
						b.StopTimer()
						op.reset(b, colls[s], lastIDs[s], i)
						b.StartTimer()
					}
				}
			}
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(i) }
			b.ReportMetric(us(took[0]), "100-µs")
			b.ReportMetric(us(took[1]), "10k-µs")
			b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
		})
	}
}
