package store_test

import (
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store/storetest"
)

// TestIDLookupUsesIndex checks that the embedded engine answers a find by
// exact _id from the _id_ index instead of scanning the collection.
//
// FerretDB 1.24 creates the _id_ index on `_ferretdb_sjson->"_id"` but
// queried on `_ferretdb_sjson->'$._id'`; SQLite matches index expressions
// syntactically, so it scanned. third_party/FerretDB carries the one-line
// fix (see third_party/README.md). Find, replace and delete by _id all use
// the same expression; explain shows the SQLite plan of the find.
func TestIDLookupUsesIndex(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	c := db.Control.Collection("idindex")
	const n = 300
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("id-%05d", i)}, {Key: "n", Value: i}}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("id-%05d", n-1)

	var res struct {
		QueryPlanner struct {
			Plan []string `bson:"Plan"`
		} `bson:"queryPlanner"`
		FilterPushdown bool `bson:"filterPushdown"`
	}
	cmd := bson.D{{Key: "explain", Value: bson.D{
		{Key: "find", Value: "idindex"},
		{Key: "filter", Value: bson.D{{Key: "_id", Value: last}}},
	}}}
	raw, err := db.Control.RunCommand(ctx, cmd).Raw()
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	if err := bson.Unmarshal(raw, &res); err != nil {
		t.Fatalf("decode explain %s: %v", raw, err)
	}
	if !res.FilterPushdown {
		t.Fatalf("explain: the _id filter was not pushed down to SQLite, so the plan says nothing about it: %s", raw)
	}
	plan := strings.Join(res.QueryPlanner.Plan, "\n")
	if len(res.QueryPlanner.Plan) == 0 {
		t.Fatalf("explain returned no SQLite query plan: %s", raw)
	}
	if !strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "SCAN") {
		t.Fatalf("find by _id does not use the _id_ index; SQLite plan:\n%s", plan)
	}
	t.Logf("SQLite plan of find by _id:\n%s", plan)

	// The indexed expression must also mean the same thing: find, replace
	// and delete by _id still hit exactly the one document.
	var got struct {
		N int `bson:"n"`
	}
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: last}}).Decode(&got); err != nil || got.N != n-1 {
		t.Fatalf("find by _id: n=%d, err %v; want %d", got.N, err, n-1)
	}
	rr, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: last}}, bson.D{{Key: "n", Value: -1}})
	if err != nil || rr.MatchedCount != 1 || rr.ModifiedCount != 1 {
		t.Fatalf("replace by _id: %+v, err %v; want 1 matched and modified", rr, err)
	}
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: last}}).Decode(&got); err != nil || got.N != -1 {
		t.Fatalf("find after replace: n=%d, err %v; want -1", got.N, err)
	}
	dr, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: last}})
	if err != nil || dr.DeletedCount != 1 {
		t.Fatalf("delete by _id: %+v, err %v; want 1 deleted", dr, err)
	}
	if cnt, err := c.CountDocuments(ctx, bson.D{}); err != nil || cnt != n-1 {
		t.Fatalf("after delete %d documents (err %v), want %d", cnt, err, n-1)
	}
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "id-00000"}}); err == nil {
		t.Fatal("duplicate _id accepted")
	}
}
