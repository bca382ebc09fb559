package store_test

import (
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

type item struct {
	ID string `bson:"_id"`
	N  int    `bson:"n"`
}

// TestTenantHandleIsolation: every method of a customer's handle, called
// with the ids of another customer's documents, finds, changes and deletes
// nothing of theirs; the other customer's documents are all still there.
func TestTenantHandleIsolation(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	// b's id starts with a's: a prefix without the separator would leak.
	a, b := "0190a1b2-0000-7000-8000-00000000000a", "0190a1b2-0000-7000-8000-00000000000a0"
	for _, name := range store.CustomerCollections {
		bc := db.Tenant(b).Collection(name)
		for i := range 5 {
			if err := bc.InsertOne(ctx, item{ID: fmt.Sprintf("x%d", i), N: i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range store.CustomerCollections {
		ac := db.Tenant(a).Collection(name)
		for _, id := range []string{"x1", b + "/x1", "/x1", "../" + b + "/x1"} {
			if err := ac.FindID(ctx, id).Err(); !errors.Is(err, mongo.ErrNoDocuments) {
				t.Fatalf("%s: a's FindID(%q) = %v", name, id, err)
			}
			if ok, err := ac.ReplaceID(ctx, id, item{ID: id, N: 99}); ok || err != nil {
				t.Fatalf("%s: a's ReplaceID(%q) matched %v (%v)", name, id, ok, err)
			}
			if ok, err := ac.DeleteID(ctx, id); ok || err != nil {
				t.Fatalf("%s: a's DeleteID(%q) deleted %v (%v)", name, id, ok, err)
			}
		}
		if n, err := ac.DeleteIDs(ctx, []string{"x0", "x2"}); n != 0 || err != nil {
			t.Fatalf("%s: a's DeleteIDs = %d, %v", name, n, err)
		}
		if n, err := ac.ReplaceMany(ctx, []string{"x3"}, []any{item{ID: "x3", N: 99}}); n != 0 || err != nil {
			t.Fatalf("%s: a's ReplaceMany = %d, %v", name, n, err)
		}
		for _, r := range []store.Range{{}, {Desc: true}, {From: "x"}, store.Prefix("x"), {Where: bson.D{{Key: "n", Value: 1}}}, {After: "x0"}, {After: "x9", Desc: true}} {
			got, err := store.All[item](ctx, ac, r)
			if err != nil || len(got) != 0 {
				t.Fatalf("%s: a's range %+v = %v, %v", name, r, got, err)
			}
			if n, err := ac.Count(ctx, r); n != 0 || err != nil {
				t.Fatalf("%s: a's count %+v = %d, %v", name, r, n, err)
			}
			if n, err := ac.DeleteRange(ctx, r); n != 0 || err != nil {
				t.Fatalf("%s: a's delete of %+v = %d, %v", name, r, n, err)
			}
		}
	}
	if n, err := db.DeleteCustomerData(ctx, a); n != 0 || err != nil {
		t.Fatalf("deleting a's data = %d, %v", n, err)
	}
	if n, err := db.CountCustomerData(ctx, b); n != int64(5*len(store.CustomerCollections)) || err != nil {
		t.Fatalf("b holds %d documents (%v), want %d", n, err, 5*len(store.CustomerCollections))
	}
	for _, name := range store.CustomerCollections {
		got, err := store.All[item](ctx, db.Tenant(b).Collection(name), store.Range{})
		if err != nil || len(got) != 5 || got[0].ID != "x0" || got[4].N != 4 {
			t.Fatalf("%s: b's documents %+v (%v)", name, got, err)
		}
	}
	// And b's own delete takes exactly its documents, twice safely.
	if n, err := db.DeleteCustomerData(ctx, b); n != int64(5*len(store.CustomerCollections)) || err != nil {
		t.Fatalf("deleting b's data = %d, %v", n, err)
	}
	if n, err := db.DeleteCustomerData(ctx, b); n != 0 || err != nil {
		t.Fatalf("deleting b's data again = %d, %v", n, err)
	}
}

// TestTenantRanges: a handle's ranges, cursors and order over logical ids.
func TestTenantRanges(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	c := db.Tenant("0190a1b2-0000-7000-8000-0000000000c1").Collection("timeline")
	other := db.Tenant("0190a1b2-0000-7000-8000-0000000000c2").Collection("timeline")
	var docs []any
	for i := range 20 {
		docs = append(docs, item{ID: fmt.Sprintf("k/%02d", i), N: i})
	}
	docs = append(docs, item{ID: "l/00", N: 100})
	if err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if err := other.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	ids := func(r store.Range) []string {
		got, err := store.All[item](ctx, c, r)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range got {
			out = append(out, g.ID)
		}
		return out
	}
	if got := ids(store.Range{Limit: 3}); fmt.Sprint(got) != "[k/00 k/01 k/02]" {
		t.Fatalf("first 3: %v", got)
	}
	if got := ids(store.Range{Desc: true, Limit: 2}); fmt.Sprint(got) != "[l/00 k/19]" {
		t.Fatalf("last 2: %v", got)
	}
	if got := ids(store.Range{From: "k/", To: store.PrefixEnd("k/"), Desc: true, After: "k/05", Limit: 3}); fmt.Sprint(got) != "[k/04 k/03 k/02]" {
		t.Fatalf("page after k/05 down: %v", got)
	}
	if got := ids(store.Range{From: "k/", To: store.PrefixEnd("k/"), After: "k/17"}); fmt.Sprint(got) != "[k/18 k/19]" {
		t.Fatalf("page after k/17 up: %v", got)
	}
	if got := ids(store.Range{Where: bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: 18}}}}}); fmt.Sprint(got) != "[k/18 k/19 l/00]" {
		t.Fatalf("where n >= 18: %v", got)
	}
	if got := ids(store.Prefix("l/")); fmt.Sprint(got) != "[l/00]" {
		t.Fatalf("prefix l/: %v", got)
	}
	if n, err := c.DeleteRange(ctx, store.Prefix("k/")); n != 20 || err != nil {
		t.Fatalf("delete k/: %d %v", n, err)
	}
	if n, _ := other.Count(ctx, store.Range{}); n != 21 {
		t.Fatalf("the other customer holds %d, want 21", n)
	}
}

// TestRangeWhereMayNotNameID: a Where naming _id (or an operator that
// could) is refused before the engine sees it.
func TestRangeWhereMayNotNameID(t *testing.T) {
	db := storetest.MustOpen(t)
	c := db.Tenant("0190a1b2-0000-7000-8000-0000000000c3").Collection("contacts")
	for _, w := range []bson.D{{{Key: "_id", Value: "x"}}, {{Key: "$or", Value: bson.A{bson.D{{Key: "_id", Value: "x"}}}}}} {
		if _, err := c.Find(t.Context(), store.Range{Where: w}); err == nil {
			t.Fatalf("Where %v accepted", w)
		}
		if _, err := c.Count(t.Context(), store.Range{Where: w}); err == nil {
			t.Fatalf("Where %v accepted by Count", w)
		}
		if _, err := c.DeleteRange(t.Context(), store.Range{Where: w}); err == nil {
			t.Fatalf("Where %v accepted by DeleteRange", w)
		}
	}
}
