package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

type ticket struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"version"`
	Status  string `bson:"status"`
}

func statusKey(status, id string) string { return "tickets/s/" + status + "/" + id }

func newTickets(t *testing.T) *store.Versioned[ticket, struct{}] {
	db := storetest.MustOpen(t)
	tn := db.Tenant("0190a1b2-0000-7000-8000-0000000000f1")
	return &store.Versioned[ticket, struct{}]{
		Docs: tn.Collection("messages"), Claims: tn.Collection("message_claims"),
		Entries: tn.Collection("indexes"), Pending: tn.Collection("pending"),
		Index:   func(d *ticket) []string { return []string{statusKey(d.Status, d.ID)} },
		Version: func(d *ticket) int64 { return d.Version },
	}
}

func byStatus(t *testing.T, v *store.Versioned[ticket, struct{}], status string) []string {
	t.Helper()
	docs, _, err := v.Scan(t.Context(), store.Prefix("tickets/s/"+status+"/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range docs {
		if d.Status != status {
			t.Fatalf("scan of %s returned %+v", status, d)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

func setStatus(to string) store.Change[ticket, struct{}] {
	return func(cur *ticket) (*ticket, struct{}, error) {
		n := *cur
		n.Version++
		n.Status = to
		return &n, struct{}{}, nil
	}
}

// TestIndexEntriesFollowChanges: a change moves a document from one
// status's range to another's (the superseded entry is deleted), pages
// fill past stale entries, and a deleted document leaves every range.
func TestIndexEntriesFollowChanges(t *testing.T) {
	v := newTickets(t)
	ctx := t.Context()
	for i := range 10 {
		id := fmt.Sprintf("t%02d", i)
		if err := v.Create(ctx, id, &ticket{ID: id, Version: 1, Status: "open"}, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"t01", "t03", "t05"} {
		if _, err := v.Update(ctx, id, store.AnyVersion, setStatus("closed"), store.UpdateOptions[ticket]{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(byStatus(t, v, "closed")); got != "[t01 t03 t05]" {
		t.Fatalf("closed: %s", got)
	}
	if got := byStatus(t, v, "open"); len(got) != 7 {
		t.Fatalf("open: %v", got)
	}
	// A page of 3 open ones after t02, and the next.
	docs, keys, err := v.Scan(ctx, store.Range{From: "tickets/s/open/", To: store.PrefixEnd("tickets/s/open/"), After: statusKey("open", "t02"), Limit: 3}, nil)
	if err != nil || len(docs) != 3 || docs[0].ID != "t04" || docs[2].ID != "t07" || keys[2] != statusKey("open", "t07") {
		t.Fatalf("page: %+v %v %v", docs, keys, err)
	}
	// keep drops hits: the page still fills.
	docs, _, err = v.Scan(ctx, store.Range{From: "tickets/s/open/", To: store.PrefixEnd("tickets/s/open/"), Limit: 2}, func(d *ticket) bool { return d.ID > "t06" })
	if err != nil || len(docs) != 2 || docs[0].ID != "t07" || docs[1].ID != "t08" {
		t.Fatalf("filtered page: %+v %v", docs, err)
	}
	if err := v.Delete(ctx, "t03", func(n int64) *ticket { return &ticket{ID: "t03", Version: n} }); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(byStatus(t, v, "closed")); got != "[t01 t05]" {
		t.Fatalf("closed after a delete: %s", got)
	}
	n, err := v.Entries.Count(ctx, store.Range{})
	if err != nil || n != 9 {
		t.Fatalf("%d index entries (%v), want one per live document", n, err)
	}
}

// TestIndexAfterCrash: a process killed between a claim and what follows
// it (the document's apply, the superseded entries' delete) leaves nothing
// hidden: the very next list and lookup, by a fresh handle as after a
// restart, show the claimed state and not the one it replaced; a creation
// killed after its claim shows in the next list of the _id range.
func TestIndexAfterCrash(t *testing.T) {
	v := newTickets(t)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		if err := v.Create(ctx, id, &ticket{ID: id, Version: 1, Status: "open"}, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	killed := true
	dying := *v
	store.CrashAfterClaim(&dying, func() bool { return killed })
	if _, err := dying.Update(ctx, "a", 1, setStatus("closed"), store.UpdateOptions[ticket]{}); err == nil {
		t.Fatal("the killed update returned no error")
	}
	if err := dying.Create(ctx, "c", &ticket{ID: "c", Version: 1, Status: "open"}, struct{}{}); err == nil {
		t.Fatal("the killed create returned no error")
	}
	if _, err := dying.ClaimMany(ctx, []string{"b"}, []*ticket{{ID: "b", Version: 1, Status: "open"}},
		[]*ticket{{ID: "b", Version: 2, Status: "held"}}, []struct{}{{}}); err == nil {
		t.Fatal("the killed ClaimMany returned no error")
	}
	// "Restart": the same collections through a fresh handle.
	restarted := *v
	if got := fmt.Sprint(byStatus(t, &restarted, "closed")); got != "[a]" {
		t.Fatalf("closed after the crash: %s", got)
	}
	if got := fmt.Sprint(byStatus(t, &restarted, "held")); got != "[b]" {
		t.Fatalf("held after the crash: %s", got)
	}
	if got := fmt.Sprint(byStatus(t, &restarted, "open")); got != "[c]" {
		t.Fatalf("open after the crash: %s (a and b moved on, c was created)", got)
	}
	if err := restarted.RollPending(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := store.All[ticket](ctx, restarted.Docs, store.Range{})
	if err != nil || len(all) != 3 || all[2].ID != "c" {
		t.Fatalf("the _id range after rolling pending creations: %+v %v", all, err)
	}
	if n, _ := restarted.Pending.Count(ctx, store.Range{}); n != 0 {
		t.Fatalf("%d pending creations left", n)
	}
}

// TestIndexRacingChanges: many writers change one document's status at
// once, again and again; each round exactly one wins each version, and
// every status range holds the document exactly when its latest state has
// that status.
func TestIndexRacingChanges(t *testing.T) {
	v := newTickets(t)
	ctx := t.Context()
	if err := v.Create(ctx, "x", &ticket{ID: "x", Version: 1, Status: "s0"}, struct{}{}); err != nil {
		t.Fatal(err)
	}
	const racers = 8
	for round := range 5 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make([]bool, racers)
		for r := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := v.Update(ctx, "x", int64(round+1), setStatus(fmt.Sprintf("s%d-%d", round+1, r)), store.UpdateOptions[ticket]{})
				won[r] = err == nil
				if err != nil && !errors.Is(err, store.ErrConflict) {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for _, w := range won {
			if w {
				winners++
			}
		}
		cur, err := v.Latest(ctx, "x")
		if err != nil || winners != 1 || cur.Version != int64(round+2) {
			t.Fatalf("round %d: %d winners, state %+v (%v)", round, winners, cur, err)
		}
		docs, _, err := v.Scan(ctx, store.Prefix("tickets/s/"), nil)
		if err != nil || len(docs) != 1 || docs[0].Status != cur.Status {
			t.Fatalf("round %d: every status holds %+v, want only %s (%v)", round, docs, cur.Status, err)
		}
	}
}
