package store_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/store/storetest"
)

// The third FerretDB patch (third_party/README.md) answers a string _id
// range, sorted by _id, with a limit, from the _id_ index.

type idRangeExplain struct {
	QueryPlanner struct {
		Plan []string `bson:"Plan"`
	} `bson:"queryPlanner"`
	FilterPushdown bool `bson:"filterPushdown"`
	SortPushdown   bool `bson:"sortPushdown"`
	LimitPushdown  bool `bson:"limitPushdown"`
}

func explainFind(t *testing.T, db *mongo.Database, coll string, filter, sort bson.D, limit int64) idRangeExplain {
	t.Helper()
	cmd := bson.D{{Key: "explain", Value: bson.D{
		{Key: "find", Value: coll},
		{Key: "filter", Value: filter},
		{Key: "sort", Value: sort},
		{Key: "limit", Value: limit},
	}}}
	raw, err := db.RunCommand(t.Context(), cmd).Raw()
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	var res idRangeExplain
	if err := bson.Unmarshal(raw, &res); err != nil {
		t.Fatalf("decode explain %s: %v", raw, err)
	}
	return res
}

// TestIDRangeUsesIndex: one customer's range, newest first, 50 of them, is
// a SEARCH of the _id_ index in index order (no temporary B-tree for the
// ORDER BY), with filter, sort and limit pushed down, and returns the right
// 50 documents. Unpatched, SQLite scans the table (the range is not pushed)
// and the handler sorts everything in Go.
func TestIDRangeUsesIndex(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	c := db.Control.Collection("idrange")
	var docs []any
	for _, cust := range []string{"9", "a", "b", "a-", "a0"} {
		for i := range 100 {
			docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("%s/%04d", cust, i)}, {Key: "n", Value: i}})
		}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: "a/"}, {Key: "$lt", Value: "a0"}}}}
	sort := bson.D{{Key: "_id", Value: -1}}

	res := explainFind(t, db.Control, "idrange", filter, sort, 50)
	plan := strings.Join(res.QueryPlanner.Plan, "\n")
	t.Logf("SQLite plan:\n%s", plan)
	if !res.FilterPushdown || !res.SortPushdown || !res.LimitPushdown {
		t.Errorf("pushdown: filter %v, sort %v, limit %v; want all", res.FilterPushdown, res.SortPushdown, res.LimitPushdown)
	}
	if !strings.Contains(plan, "SEARCH") || !strings.Contains(plan, "USING INDEX") ||
		strings.Contains(plan, "SCAN") || strings.Contains(plan, "TEMP B-TREE") {
		t.Fatalf("the _id range is not a search of the _id_ index in index order; SQLite plan:\n%s", plan)
	}

	cur, err := c.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(50))
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("got %d documents, want 50", len(got))
	}
	for i, d := range got {
		if want := fmt.Sprintf("a/%04d", 99-i); d.ID != want {
			t.Fatalf("document %d is %q, want %q", i, d.ID, want)
		}
	}
}

// idRangeAtoms are the pieces random string _ids and bounds are made of:
// the alphabet Switchboard writes, and characters whose JSON text (the
// index key) is escaped or sorts differently from their UTF-8 bytes.
var idRangeAtoms = []string{
	"", "a", "a/", "a0", "b", "A", "Z", "0", "9", "-", "_", "/", ":", "#", "+", ".", "=", "~",
	`"`, `\`, "\x00", "\x01", "\x1f", "\n", "\t", " ", "!", "<", "&", ">", "[", "]", "\x7f",
	"é", "\u0080", "\u2028", "\u2029", "\uFFFD", "😀",
}

// idRangePlainAtoms are those of the alphabet Switchboard writes.
var idRangePlainAtoms = []string{"a", "a/", "a0", "b", "A", "Z", "0", "9", "-", "_", "/", ":", "#", "+", ".", "=", "~"}

func randIDString(r *rand.Rand, atoms []string) string {
	var b strings.Builder
	for range r.IntN(5) {
		b.WriteString(atoms[r.IntN(len(atoms))])
	}
	return b.String()
}

// TestIDRangeMatchesUnpushed is the differential test of the pushdown. Over
// two collections of mixed-type _ids (strings, ints, doubles, ObjectIDs,
// bools, null, documents), one whose strings have quotes, backslashes,
// control characters, spaces, `!` and non-ASCII text, one whose strings are
// only of Switchboard's alphabet, it runs thousands of random finds: a string
// _id condition ($eq, or at most one of $gt/$gte and one of $lt/$lte, bounds
// from all the atoms), sometimes with a condition on another field, sorted by
// _id ascending, descending or not, with or without a limit, with random
// batch sizes (getMore). Each answer must equal
//   - the engine's unpushed answer: the same filter inside $and, which the
//     handler does not push down at all (no filter, sort or limit pushdown;
//     FerretDB's Go filter and sort over the whole collection), and
//   - a reference computed here: MongoDB's type bracketing (only string _ids
//     match a string bound) and binary UTF-8 order.
//
// Without a sort the order is unspecified, and with a limit so is which
// documents: then only the count and membership are checked.
func TestIDRangeMatchesUnpushed(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))

	type collection struct {
		c       *mongo.Collection
		strings map[string]int // string _id -> n
	}
	var colls []collection
	for ci, atoms := range [][]string{idRangeAtoms, idRangePlainAtoms} {
		c := db.Control.Collection(fmt.Sprintf("idrange_diff_%d", ci))
		seen := map[string]int{}
		var docs []any
		n := 0
		add := func(id any) {
			docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: n}})
			n++
		}
		for len(seen) < 250 {
			s := randIDString(r, atoms)
			if _, ok := seen[s]; ok {
				continue
			}
			seen[s] = n
			add(s)
		}
		for i := range 20 {
			add(int32(i - 5))
			add(float64(i) + 0.5)
			var oid bson.ObjectID
			copy(oid[:], fmt.Sprintf("%c%c%010d", "a9"[i%2], "0/"[i%2], i)) // hex of ObjectIDs starting "6130", "392f"
			add(oid)
			add(bson.D{{Key: "x", Value: i}})
		}
		add(true)
		add(false)
		add(nil)
		if _, err := c.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		colls = append(colls, collection{c: c, strings: seen})
	}

	find := func(c *mongo.Collection, filter bson.D, opts *options.FindOptionsBuilder) []string {
		t.Helper()
		cur, err := c.Find(ctx, filter, opts)
		if err != nil {
			t.Fatalf("find %v: %v", filter, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatalf("find %v: %v", filter, err)
		}
		ids := make([]string, len(docs))
		for i, d := range docs {
			s, ok := d.Lookup("_id").StringValueOK()
			if !ok {
				t.Fatalf("find %v: a string _id bound matched the non-string _id %v", filter, d.Lookup("_id"))
			}
			ids[i] = s
		}
		return ids
	}

	const iterations = 2000
	var pushedSorted, limited, extra int
	for it := range iterations {
		coll := colls[it%2]
		bound := func() string { return randIDString(r, idRangeAtoms) }
		var cond bson.D
		var idCond any // the _id condition of the filter
		var match func(s string) bool
		if r.IntN(7) == 0 {
			// {_id: {$in: [...]}}: some of the collection's strings, some
			// random ones.
			set := map[string]bool{}
			var in bson.A
			for range 1 + r.IntN(12) {
				v := bound()
				if r.IntN(2) == 0 {
					for k := range coll.strings {
						v = k
						break
					}
				}
				set[v] = true
				in = append(in, v)
			}
			match = func(s string) bool { return set[s] }
			cond = bson.D{{Key: "$in", Value: in}}
			idCond = cond
		} else if r.IntN(6) == 0 {
			v := bound()
			match = func(s string) bool { return s == v }
			cond = bson.D{{Key: "$eq", Value: v}}
			idCond = v // {_id: v}
			if r.IntN(2) == 0 {
				idCond = cond // {_id: {$eq: v}}
			}
		} else {
			var lo, hi *string
			var loIncl, hiIncl bool
			for lo == nil && hi == nil {
				if r.IntN(3) != 0 {
					s := bound()
					lo, loIncl = &s, r.IntN(2) == 0
					op := "$gt"
					if loIncl {
						op = "$gte"
					}
					cond = append(cond, bson.E{Key: op, Value: s})
				}
				if r.IntN(3) != 0 {
					s := bound()
					hi, hiIncl = &s, r.IntN(2) == 0
					op := "$lt"
					if hiIncl {
						op = "$lte"
					}
					cond = append(cond, bson.E{Key: op, Value: s})
				}
			}
			if r.IntN(2) == 0 {
				slices.Reverse(cond)
			}
			match = func(s string) bool {
				if lo != nil && (s < *lo || (!loIncl && s == *lo)) {
					return false
				}
				if hi != nil && (s > *hi || (!hiIncl && s == *hi)) {
					return false
				}
				return true
			}
			idCond = cond
		}
		filter := bson.D{{Key: "_id", Value: idCond}}
		unpushed := bson.A{bson.D{{Key: "_id", Value: idCond}}}
		var minN int
		if r.IntN(3) == 0 {
			minN = r.IntN(330)
			filter = append(filter, bson.E{Key: "n", Value: bson.D{{Key: "$gte", Value: minN}}})
			unpushed = append(unpushed, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: minN}}}})
			extra++
		}
		dir := []int{0, 1, -1}[r.IntN(3)]
		var limit int64
		if r.IntN(2) == 0 {
			limit = int64(1 + r.IntN(30))
			limited++
		}
		opts := options.Find()
		if dir != 0 {
			opts.SetSort(bson.D{{Key: "_id", Value: dir}})
		}
		if limit != 0 {
			opts.SetLimit(limit)
		}
		if r.IntN(4) == 0 {
			opts.SetBatchSize(int32(1 + r.IntN(5)))
		}

		var want []string
		for s, n := range coll.strings {
			if match(s) && n >= minN {
				want = append(want, s)
			}
		}
		slices.Sort(want) // binary order of the UTF-8 bytes
		if dir < 0 {
			slices.Reverse(want)
		}
		all := len(want)
		if limit != 0 && int64(len(want)) > limit {
			want = want[:limit]
		}

		got := find(coll.c, filter, opts)
		ref := find(coll.c, bson.D{{Key: "$and", Value: unpushed}}, opts)
		if dir != 0 {
			pushedSorted++
			if !slices.Equal(got, want) || !slices.Equal(ref, want) {
				t.Fatalf("collection %d, find %v sort %d limit %d:\npushed   %q\nunpushed %q\nwant     %q",
					it%2, filter, dir, limit, got, ref, want)
			}
			continue
		}
		// No sort: any order; with a limit, any limit of the matching documents.
		slices.Sort(got)
		slices.Sort(ref)
		wantN := min(all, len(want))
		inRange := func(ids []string) bool {
			for _, s := range ids {
				if n, ok := coll.strings[s]; !ok || !match(s) || n < minN {
					return false
				}
			}
			return len(slices.Compact(slices.Clone(ids))) == len(ids)
		}
		if len(got) != wantN || len(ref) != wantN || !inRange(got) || !inRange(ref) || (limit == 0 && !slices.Equal(got, want)) {
			t.Fatalf("collection %d, find %v limit %d:\npushed   %q\nunpushed %q\nwant     %q", it%2, filter, limit, got, ref, want)
		}
	}
	t.Logf("%d finds: %d sorted, %d limited, %d with another condition", iterations, pushedSorted, limited, extra)
}

// TestIDInUsesIndex: {_id: {$in: [strings]}} is one statement of _id_
// index lookups (fails without the patch: a SCAN), exactly the documents
// named.
func TestIDInUsesIndex(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	c := db.Control.Collection("idin")
	var docs []any
	for i := range 300 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("c/%04d", i)}})
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"c/0007", "c/0250", "c/9999"}}}}}
	res := explainFind(t, db.Control, "idin", filter, bson.D{}, 0)
	plan := strings.Join(res.QueryPlanner.Plan, "\n")
	if !res.FilterPushdown || !strings.Contains(plan, "USING INDEX") || strings.Contains(plan, "SCAN") {
		t.Fatalf("an $in of _ids is not served by the _id_ index: pushdown %v, plan:\n%s", res.FilterPushdown, plan)
	}
	cur, err := c.Find(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	var got []bson.M
	if err := cur.All(ctx, &got); err != nil || len(got) != 2 {
		t.Fatalf("found %v (%v), want c/0007 and c/0250", got, err)
	}
}
