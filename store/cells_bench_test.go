package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

// BenchmarkEightCustomersWriting: 8 customers, drawn at random, each
// writing single-document inserts (a claim-sized document) at once, for
// 2 s per layout:
//
//   - per-customer: a database (one SQLite file) per customer, the first
//     layout;
//   - one-file: every customer in one database (Cells: 1, what MongoDB
//     gets);
//   - cells: the shared layout on the embedded engine, customers spread
//     over 64 databases by their id.
//
// It reports inserts/s of each and the ratios to per-customer (target for
// the layout that ships: ≥ 0.9).
//
// Run: go test -run '^$' -bench EightCustomers -benchtime 1x ./store/
func BenchmarkEightCustomersWriting(b *testing.B) {
	db := storetest.MustOpen(b)
	ctx := context.Background()
	doc := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "version", Value: 1}, {Key: "sealed", Value: make([]byte, 600)},
			{Key: "at", Value: time.Now()}}
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	tag := hex.EncodeToString(suffix)
	one := store.WithNames(db, store.Names{Control: "b1" + tag + "_ctl", Keys: "b1" + tag + "_keys", Data: "b1" + tag + "_data", Cells: 1})
	cells := store.WithNames(db, store.Names{Control: "bc" + tag + "_ctl", Keys: "bc" + tag + "_keys", Data: "bc" + tag + "_data", Cells: 64})
	b.Cleanup(func() {
		names, _ := db.Client.ListDatabaseNames(ctx, bson.D{})
		for _, n := range names {
			if len(n) > 10 && (n[:10] == "b1"+tag || n[:10] == "bc"+tag || n[:10] == "bp"+tag) {
				db.Client.Database(n).Drop(ctx)
			}
		}
	})
	layouts := []struct {
		name   string
		insert func(customer, id string) error
	}{
		{"per-customer", func(customer, id string) error {
			_, err := db.Client.Database("bp"+tag+"_"+customer[len(customer)-12:]).Collection("contacts").InsertOne(ctx, doc(id))
			return err
		}},
		{"one-file", func(customer, id string) error {
			return one.Tenant(customer).Collection("contacts").InsertOne(ctx, doc(id))
		}},
		{"cells", func(customer, id string) error {
			return cells.Tenant(customer).Collection("contacts").InsertOne(ctx, doc(id))
		}},
	}
	const writers = 8
	const window = 2 * time.Second
	rates := map[string]float64{}
	for b.Loop() {
		for _, l := range layouts {
			customers := make([]string, writers)
			for i := range customers {
				customers[i] = uuid.Must(uuid.NewV7()).String()
				// Collections exist before the clock starts.
				if err := l.insert(customers[i], "warm"); err != nil {
					b.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			counts := make([]int, writers)
			stop := time.Now().Add(window)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; time.Now().Before(stop); n++ {
						if err := l.insert(customers[w], fmt.Sprintf("d%08d", n)); err != nil {
							b.Error(err)
							return
						}
						counts[w]++
					}
				}()
			}
			wg.Wait()
			total := 0
			for _, c := range counts {
				total += c
			}
			rates[l.name] += float64(total) / window.Seconds()
		}
	}
	for _, l := range layouts {
		b.ReportMetric(rates[l.name]/float64(b.N), l.name+"-inserts/s")
	}
	b.ReportMetric(rates["one-file"]/rates["per-customer"], "one-file/per-customer")
	b.ReportMetric(rates["cells"]/rates["per-customer"], "cells/per-customer")
}
