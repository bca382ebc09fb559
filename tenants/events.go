package tenants

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// Events returns a page of a customer's lifecycle events, oldest first.
// Event n is the claim of version n, so a page is a handful of reads by _id
// whatever the number of customers or events stored.
func (s *Service) Events(ctx context.Context, p Partner, id string, q PageQuery) ([]Event, string, error) {
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return nil, "", err
	}
	from := int64(1)
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 1)
		if err != nil {
			return nil, "", err
		}
		v, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil || v < 1 || v > math.MaxInt64/2 {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		from = v + 1
	}
	// The cached version may lag behind a claim; the claims past it are
	// read below, so a page never misses an event that exists.
	to := min(doc.Version, from+int64(q.Limit)-1)
	claims := make([]*customerClaim, 0, max(to-from+1, 0))
	exported := map[int64][]Event{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for v := from; v <= to; v++ {
		g.Go(func() error {
			c, err := s.customers.Claim(gctx, id, v)
			if err != nil {
				return fmt.Errorf("list events: %w", err)
			}
			x, err := s.exportEvents(gctx, id, v)
			if err != nil {
				return err
			}
			mu.Lock()
			claims = append(claims, c)
			exported[v] = x
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	for len(claims) < q.Limit {
		c, err := s.customers.Claim(ctx, id, to+1)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
		claims = append(claims, c)
		to++
	}
	slices.SortFunc(claims, func(a, b *customerClaim) int { return cmp.Compare(a.Version, b.Version) })
	out := make([]Event, 0, len(claims))
	for _, c := range claims {
		out = append(out, Event{ID: c.Event.ID, CustomerID: id, Type: c.Event.Type, At: c.Event.At.UTC(), Version: c.Version, Data: c.Event.Data})
		// Exports at this version follow its event (a page may so hold a
		// few more items than its limit: pages are cut by version).
		x, ok := exported[c.Version]
		if !ok { // a claim past the cached version, read below
			var err error
			if x, err = s.exportEvents(ctx, id, c.Version); err != nil {
				return nil, "", err
			}
		}
		out = append(out, x...)
	}
	nextCursor := ""
	if len(claims) == q.Limit {
		if _, err := s.customers.Claim(ctx, id, to+1); err == nil {
			nextCursor = switchboard.EncodeCursor(strconv.FormatInt(to, 10))
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
	}
	return out, nextCursor, nil
}
