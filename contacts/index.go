package contacts

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/switchboard/switchboard/store"
)

// A contact's channel addresses are found through index entries
// (store.Versioned.Scan): "contacts/ch/<blind index>/<contact id>", one per
// channel, written before the claim of the state that has them.
const ixChannel = "contacts/ch/"

func contactEntries(d *contactDoc) []string {
	keys := make([]string, 0, len(d.ChannelIdx))
	for _, idx := range d.ChannelIdx {
		k := ixChannel + hex.EncodeToString(idx) + "/" + d.ID
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// byChannel returns the contacts with any of the channel blind indexes
// idxs, newest first, at most limit.
func (h *Handle) byChannel(ctx context.Context, idxs [][]byte, limit int) ([]contactDoc, error) {
	seen := map[string]bool{}
	var out []contactDoc
	for _, idx := range idxs {
		r := store.Prefix(ixChannel + hex.EncodeToString(idx) + "/")
		r.Desc, r.Limit = true, limit
		docs, _, err := h.docs.Scan(ctx, r, nil)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if !seen[d.ID] {
				seen[d.ID] = true
				out = append(out, *d)
			}
		}
	}
	slices.SortFunc(out, func(a, b contactDoc) int { return strings.Compare(b.ID, a.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Reindex writes the index entries of every contact of a customer: for
// contacts stored before the entries existed (switchboard migrate).
func Reindex(ctx context.Context, t *store.Tenant) (int, error) {
	v := &store.Versioned[contactDoc, struct{}]{Docs: t.Collection("contacts"), Claims: t.Collection("contact_claims"),
		Entries: t.Collection("indexes"), Index: contactEntries, Version: func(d *contactDoc) int64 { return d.Version }}
	return v.Reindex(ctx)
}
