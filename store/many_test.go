package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/switchboard/switchboard/store"
)

// TestClaimManyHasOneWinnerPerDocument races batches over the same
// documents, mixed with single updates: every document ends with exactly
// one change per version, the stored state is its latest claim's, and
// nothing a winner was told it won is lost.
func TestClaimManyHasOneWinnerPerDocument(t *testing.T) {
	v := newCounters(t)
	ctx := t.Context()
	for round := range 5 {
		var ids []string
		for i := range 20 {
			id := fmt.Sprintf("m%d-%d", round, i)
			ids = append(ids, id)
			if err := v.Create(ctx, id, &counter{ID: id, Version: 1}, note{By: "create"}); err != nil {
				t.Fatal(err)
			}
		}
		wins := make([]atomic.Int32, len(ids))
		race(racers, func(r int) {
			by := fmt.Sprint(r)
			if r%4 == 3 {
				// A single writer at the same version, on one document.
				if _, err := v.Update(ctx, ids[r%len(ids)], 1, bump(by), store.UpdateOptions[counter]{}); err == nil {
					wins[r%len(ids)].Add(1)
				}
				return
			}
			nexts := make([]*counter, len(ids))
			evs := make([]note, len(ids))
			for i, id := range ids {
				nexts[i] = &counter{ID: id, Version: 2, Applied: []string{by}}
				evs[i] = note{By: by}
			}
			won, err := v.ClaimMany(ctx, ids, nil, nexts, evs)
			if err != nil {
				t.Error(err)
				return
			}
			for i, w := range won {
				if w {
					wins[i].Add(1)
				}
			}
		})
		for i, id := range ids {
			if n := wins[i].Load(); n != 1 {
				t.Fatalf("round %d: document %s had %d winners", round, id, n)
			}
			got, err := v.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Claim(ctx, id, 2)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != 2 || len(got.Applied) != 1 || got.Applied[0] != c.Event.By {
				t.Fatalf("round %d: %s stored %+v, its claim says %q", round, id, got, c.Event.By)
			}
		}
	}
}
