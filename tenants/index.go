package tenants

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// Customers are listed per partner, and the purge finds the due ones,
// through index entries in the control collection customer_index
// (store.Versioned.Scan), written before the claim of the state they index:
//
//	p/<partner>/<customer>             a partner's customers (ids are time-ordered)
//	ps/<partner>/<status>/<customer>   ... with one status
//	due/<shredAt>/<customer>           a TERMINATED customer's shred date
const customerIndexColl = "customer_index"

func customerEntries(d *customerDoc) []string {
	keys := []string{"p/" + d.PartnerID + "/" + d.ID, "ps/" + d.PartnerID + "/" + string(d.Status) + "/" + d.ID}
	if d.Status == StatusTerminated && d.Retention != nil && d.Retention.ShredAt != nil {
		keys = append(keys, "due/"+store.TimeKey(*d.Retention.ShredAt)+"/"+d.ID)
	}
	return keys
}

// Customers lists p's customers, newest first, and returns the cursor of the
// next page ("" when there is none).
func (s *Service) Customers(ctx context.Context, p Partner, q ListQuery) ([]Customer, string, error) {
	prefix := "p/" + p.ID + "/"
	if q.Status != "" {
		prefix = "ps/" + p.ID + "/" + string(q.Status) + "/"
	}
	r := store.Prefix(prefix)
	r.Desc, r.Limit = true, q.Limit+1
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 1)
		if err != nil {
			return nil, "", err
		}
		r.After = prefix + last[0]
	}
	docs, _, err := s.customers.Scan(ctx, r, nil)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	more := len(docs) > q.Limit
	if more {
		docs = docs[:q.Limit]
	}
	out := make([]Customer, 0, len(docs))
	for _, d := range docs {
		c, err := s.view(ctx, d, nil)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	next := ""
	if more {
		next = switchboard.EncodeCursor(docs[len(docs)-1].ID)
	}
	return out, next, nil
}

// dueCustomers are the TERMINATED customers whose shredAt is not after now,
// in shred order.
func (s *Service) dueCustomers(ctx context.Context, now time.Time) ([]customerDoc, error) {
	r := store.Range{From: "due/", To: "due/" + store.TimeKey(now.Add(time.Millisecond))}
	docs, _, err := s.customers.Scan(ctx, r, func(d *customerDoc) bool {
		return d.Status == StatusTerminated && d.Retention != nil && d.Retention.ShredAt != nil && !d.Retention.ShredAt.After(now)
	})
	if err != nil {
		return nil, err
	}
	out := make([]customerDoc, len(docs))
	for i, d := range docs {
		out[i] = *d
	}
	return out, nil
}

// ReindexCustomers writes the index entries of every customer: for
// customers stored before the entries existed (switchboard migrate).
func (s *Service) ReindexCustomers(ctx context.Context) (int, error) {
	return s.customers.Reindex(ctx)
}
