package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

// The fixture is a data dir written by the release before the shared
// layout (commit 4135b21) with testdata/layout1-datadir.sh: one partner
// (its key in fixture.txt), three customers with contacts, a timeline
// event, a number, sent and received messages and a texted STOP; the third
// is terminated with a month's retention.
func unpackFixture(t *testing.T) (dir string, partnerKey string, customers []string) {
	t.Helper()
	root := t.TempDir()
	out, err := exec.Command("tar", "-C", root, "-xzf", "testdata/layout1-datadir.tar.gz").CombinedOutput()
	if err != nil {
		t.Fatalf("untar fixture: %v %s", err, out)
	}
	dir = filepath.Join(root, "data")
	b, err := os.ReadFile(filepath.Join(dir, "fixture.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	return dir, lines[0], lines[1:]
}

// legacySnapshot reads every document of every first-layout customer
// database, rekeyed as migrate stores them, by customer and collection.
func legacySnapshot(t *testing.T, dir string) map[string]map[string][]bson.M {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	legacy, err := db.LegacyDatabases(ctx)
	if err != nil || len(legacy) != 3 {
		t.Fatalf("legacy databases %v (%v)", legacy, err)
	}
	out := map[string]map[string][]bson.M{}
	for id, name := range legacy {
		out[id] = map[string][]bson.M{}
		colls, err := db.Client.Database(name).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range colls {
			cur, err := db.Client.Database(name).Collection(c).Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			for cur.Next(ctx) {
				raw := bson.Raw(append([]byte(nil), cur.Current...))
				if c == "timeline" {
					if raw, err = contacts.LegacyTimelineRow(raw); err != nil {
						t.Fatal(err)
					}
				}
				var m bson.M
				if err := bson.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				out[id][c] = append(out[id][c], m)
			}
			cur.Close(ctx)
		}
	}
	return out
}

// TestMigrateFirstLayout: serve and purge refuse the old layout naming
// migrate; a migrate killed half-way (some documents copied, one customer
// copied but its old database not dropped) and run again moves every
// document exactly once, unchanged, and drops every old database; a third
// run does nothing; then the server reads everything back through the API.
func TestMigrateFirstLayout(t *testing.T) {
	dir, key, customers := unpackFixture(t)
	e := env{"SWITCHBOARD_DATA_DIR": dir, "SWITCHBOARD_ADDR": freeAddr(t), "SWITCHBOARD_LOG_LEVEL": "error"}
	e["SWITCHBOARD_PUBLIC_URL"] = "http://" + e["SWITCHBOARD_ADDR"]
	for _, cmd := range [][]string{{"serve"}, {"purge", "--now", "2099-01-01T00:00:00Z"}} {
		_, err := cli(t, e, cmd...)
		if err == nil || !strings.Contains(err.Error(), "switchboard migrate") {
			t.Fatalf("%s on the old layout: %v", cmd[0], err)
		}
	}
	want := legacySnapshot(t, dir)
	total := 0
	for _, colls := range want {
		for _, docs := range colls {
			total += len(docs)
		}
	}

	// A run killed half-way: half of the first customer's contacts and
	// timeline copied; the second customer copied whole, its old database
	// still there.
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"contacts", "timeline"} {
		docs := want[customers[0]][c]
		for _, d := range docs[:len(docs)/2+1] {
			if err := db.Tenant(customers[0]).Collection(c).InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	for c, docs := range want[customers[1]] {
		for _, d := range docs {
			if err := db.Tenant(customers[1]).Collection(c).InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close(ctx)

	out, err := cli(t, e, "migrate")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if len(lines) != 7 || !strings.Contains(lines[3], `"step":"subaccount-routes"`) || !strings.Contains(lines[4], `"step":"partner-key-index"`) ||
		!strings.Contains(last, `"layout":2`) || !strings.Contains(last, `"customersMoved":3`) {
		t.Fatalf("migrate printed\n%s", out)
	}
	var sum struct {
		Summary struct{ Documents int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(last), &sum); err != nil || sum.Summary.Documents != total {
		t.Fatalf("summary %s: want %d documents", last, total)
	}
	if out, err := cli(t, e, "migrate"); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"customersMoved":0`) {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}

	db, err = store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if legacy, err := db.LegacyDatabases(ctx); err != nil || len(legacy) != 0 {
		t.Fatalf("old databases left: %v (%v)", legacy, err)
	}
	if err := db.CheckLayout(ctx); err != nil {
		t.Fatal(err)
	}
	for id, colls := range want {
		for c, docs := range colls {
			got, err := store.All[bson.M](ctx, db.Tenant(id).Collection(c), store.Range{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(docs) {
				t.Fatalf("%s %s: %d documents, want %d", id, c, len(got), len(docs))
			}
			byID := map[any]bson.M{}
			for _, g := range got {
				byID[g["_id"]] = g
			}
			for _, d := range docs {
				if !reflect.DeepEqual(byID[d["_id"]], d) {
					t.Fatalf("%s %s %v moved as\n%v\nwas\n%v", id, c, d["_id"], byID[d["_id"]], d)
				}
			}
		}
	}
	db.Close(ctx)

	// The server reads it all back: sealed values open, lookups and lists
	// work, the opt-out holds.
	srv := startServer(t, e)
	st, list := srv.call(t, "GET", "/v1/customers", key, nil)
	if st != 200 || len(list["items"].([]any)) != 3 {
		t.Fatalf("customers: %d %v", st, list)
	}
	st, tok := srv.call(t, "POST", "/v1/customers/"+customers[0]+"/tokens", key, map[string]any{"subject": "app"})
	if st != 201 {
		t.Fatalf("mint: %d %v", st, tok)
	}
	jwt := tok["accessToken"].(string)
	st, found := srv.call(t, "GET", "/v1/contacts?email=ann@example.com", jwt, nil)
	items, _ := found["items"].([]any)
	if st != 200 || len(items) != 1 || items[0].(map[string]any)["firstName"] != "Ann" {
		t.Fatalf("lookup: %d %v", st, found)
	}
	ann := items[0].(map[string]any)["id"].(string)
	if st, ch := srv.call(t, "GET", "/v1/contacts?channel=ann.work@example.com", jwt, nil); st != 200 || !strings.Contains(mustJSON(t, ch), ann) {
		t.Fatalf("channel lookup: %d %v", st, ch)
	}
	if st, open := srv.call(t, "GET", "/v1/customers?status=ACTIVE", key, nil); st != 200 || len(open["items"].([]any)) != 2 {
		t.Fatalf("active customers: %d %v", st, open)
	}
	st, tl := srv.call(t, "GET", "/v1/contacts/"+ann+"/timeline", jwt, nil)
	if st != 200 || !strings.Contains(mustJSON(t, tl), "Order 42 shipped") {
		t.Fatalf("timeline: %d %v", st, tl)
	}
	st, msgs := srv.call(t, "GET", "/v1/messages", jwt, nil)
	if st != 200 || !strings.Contains(mustJSON(t, msgs), "Your table is ready") || !strings.Contains(mustJSON(t, msgs), "Thanks, on my way") {
		t.Fatalf("messages: %d %v", st, msgs)
	}
	if st, o := srv.call(t, "GET", "/v1/opt-outs/+14155550177", jwt, nil); st != 200 || o["optedOut"] != true {
		t.Fatalf("opt-out: %d %v", st, o)
	}
	// The partner's key is in its range: a rotation retires it.
	out, err = cli(t, e, "partners", "rotate-key", "--id", list["items"].([]any)[0].(map[string]any)["partnerId"].(string), "--now")
	if err != nil {
		t.Fatal(err)
	}
	// (The server may trust a key it checked for 5 s more.)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, _ := srv.call(t, "GET", "/v1/customers", key, nil)
		if st == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated-out key still answers %d", st)
		}
	}
	key = strings.Split(strings.Split(out, `"apiKey":"`)[1], `"`)[0]
	// The terminated customer is shredded from the shared layout: its
	// documents and their index entries, counted through the server's engine.
	att, err := store.Open(ctx, store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	held, err := att.CountCustomerData(ctx, customers[2])
	att.Close(ctx)
	if err != nil || held <= int64(len(want[customers[2]]["messages"])) {
		t.Fatalf("the terminated customer holds %d documents (%v)", held, err)
	}
	out, err = cli(t, e, "purge", "--now", "2099-01-01T00:00:00Z")
	if err != nil || !strings.Contains(out, customers[2]) || !strings.Contains(out, `"shredded":1`) {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	st, cert := srv.call(t, "GET", "/v1/customers/"+customers[2]+"/erasure-certificate", key, nil)
	if st != 200 {
		t.Fatalf("certificate: %d %v", st, cert)
	}
	if got := cert["claims"].(map[string]any)["documentsDeleted"]; got != float64(held) {
		t.Fatalf("documentsDeleted %v, want %d", got, held)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
