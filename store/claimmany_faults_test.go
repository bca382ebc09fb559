package store_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard/switchboard/store"
)

// TestClaimManyOnMissingDocument: Update of a document that does not
// exist is ErrNotFound and claims nothing. ClaimMany answers won=true with
// no error for it, and leaves an orphan claim of version 2 behind: a later
// Create of that id and its first Update then lose version 2 to the orphan,
// whose state the document silently takes.
func TestClaimManyOnMissingDocument(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	if err := v.Create(ctx, "here", &counter{ID: "here", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}
	won, err := v.ClaimMany(ctx, []string{"here", "ghost"}, nil,
		[]*counter{{ID: "here", Version: 2, Applied: []string{"batch"}}, {ID: "ghost", Version: 2, Applied: []string{"batch"}}},
		[]note{{By: "batch"}, {By: "batch"}})
	t.Logf("won %v err %v", won, err)
	if err == nil && won[1] {
		t.Errorf("ClaimMany says it changed a document that does not exist")
	}
	if _, err := v.Get(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ghost: %v", err)
	}
	if err := v.Create(ctx, "ghost", &counter{ID: "ghost", Version: 1}, note{}); err != nil {
		t.Fatal(err)
	}
	got, err := v.Update(ctx, "ghost", 1, bump("later"), store.UpdateOptions[counter]{})
	var ce *store.ConflictError
	if errors.As(err, &ce) || (err == nil && (len(got.Applied) != 1 || got.Applied[0] != "later")) {
		cur, _ := v.Latest(ctx, "ghost")
		t.Errorf("a new document's first update lost to the orphan claim: %v; document now %+v", err, cur)
	}
}

// TestClaimManyChainsNeverHideANewerClaim: racers move the same
// documents forward again and again, half through ClaimMany (from the
// cached state they read), half through Update(AnyVersion). Afterwards the
// cached document (Get, no settling) of each is its latest claim, and
// versions are contiguous with one writer each.
func TestClaimManyChainsNeverHideANewerClaim(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	for round := range 3 {
		var ids []string
		for i := range 6 {
			id := fmt.Sprintf("r%d-%d", round, i)
			ids = append(ids, id)
			if err := v.Create(ctx, id, &counter{ID: id, Version: 1}, note{By: "create"}); err != nil {
				t.Fatal(err)
			}
		}
		var fails atomic.Int32
		race(racers, func(r int) {
			by := fmt.Sprint(r)
			for step := range 6 {
				if r%2 == 0 {
					id := ids[(r+step)%len(ids)]
					if _, err := v.Update(ctx, id, store.AnyVersion, bump(by), store.UpdateOptions[counter]{}); err != nil {
						t.Errorf("update: %v", err)
					}
					continue
				}
				nexts := make([]*counter, len(ids))
				evs := make([]note, len(ids))
				for i, id := range ids {
					cur, err := v.Get(ctx, id)
					if err != nil {
						t.Error(err)
						return
					}
					n := *cur
					n.Version++
					n.Applied = append(append([]string(nil), cur.Applied...), by)
					nexts[i], evs[i] = &n, note{By: by}
				}
				if _, err := v.ClaimMany(ctx, ids, nil, nexts, evs); err != nil {
					fails.Add(1)
					t.Errorf("claim many: %v", err)
				}
			}
		})
		for _, id := range ids {
			var last int64
			for n := int64(2); ; n++ {
				if _, err := v.Claim(ctx, id, n); err != nil {
					break
				}
				last = n
			}
			got, err := v.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != last || int64(len(got.Applied)) != last-1 {
				t.Errorf("round %d: %s cached at version %d (%d changes), latest claim %d", round, id, got.Version, len(got.Applied), last)
			}
		}
	}
}
