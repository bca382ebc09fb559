package messages

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

// BenchmarkListAtScale measures a customer's message list, each filter,
// first page (50) and a page 90% down, and the erasure of one contact's 50
// messages (RedactParty), in a customer holding 100 messages and in one
// holding 100,000, in the same run; it reports both and the ratio of each
// (target ≤ 1.3). The fixture: messages a millisecond apart, alternating
// direction, statuses in turn, a tenth of them with one phone (and linked
// to one contact), the contact to erase holding 50.
//
// Run: go test -run '^$' -bench ListAtScale -benchtime 20x -timeout 30m ./messages/
func BenchmarkListAtScale(b *testing.B) {
	ctx := context.Background()
	db := storetest.MustOpen(b)
	key := bytes.Repeat([]byte{7}, 32)
	ciphers := map[string]*crypto.Cipher{}
	cipherOf := func(_ context.Context, id string) (*crypto.Cipher, error) { return ciphers[id], nil }
	svc := NewService(Config{Control: db.Control, Tenant: db.Tenant, Cipher: cipherOf,
		Contacts: &contacts.Service{Cipher: cipherOf, Tenant: db.Tenant}, Secret: key, PublicURL: "http://bench.test"})
	sizes := [2]int{100, 100000}
	type fixture struct {
		h       *Handle
		deep    map[string]string // cursor 90% down, by query
		want    map[string]int    // the page's length, by query (and query-deep)
		erase   string            // the contact with 50 messages
		erasing int
	}
	var fx [2]fixture
	const phone, other = "+14155550100", "+14155550199"
	queries := map[string]Query{
		"all":       {},
		"status":    {Status: StatusDelivered},
		"direction": {Direction: Inbound},
		"contactId": {ContactID: "frequent"},
		"phone":     {Phone: phone},
	}
	for s, n := range sizes {
		id := uuid.Must(uuid.NewV7()).String()
		c, err := crypto.NewCipher(id, "k1", key)
		if err != nil {
			b.Fatal(err)
		}
		ciphers[id] = c
		h, err := svc.OpenWith(ctx, id, c)
		if err != nil {
			b.Fatal(err)
		}
		f := fixture{h: h, deep: map[string]string{}, want: map[string]int{}, erase: "erase-" + id}
		start := time.Now()
		base := time.Now().Add(-time.Duration(n) * time.Millisecond).UTC().Truncate(time.Millisecond)
		statuses := []string{StatusAccepted, StatusSending, StatusSent, StatusDelivered, StatusFailed}
		var batch []any
		for i := range n {
			d := &messageDoc{ID: uuid.Must(uuid.NewV7()).String(), Version: 1, CreatedAt: base.Add(time.Duration(i) * time.Millisecond)}
			d.UpdatedAt = d.CreatedAt
			to := fmt.Sprintf("+1416555%04d", i%10000)
			switch {
			case i%10 == 3:
				to, d.ContactID = phone, ptr("frequent")
			case i%(n/50) == 0 && f.erasing < 50:
				d.ContactID = ptr(f.erase)
				f.erasing++
			}
			d.Direction, d.Status = Outbound, statuses[i%len(statuses)]
			from := other
			if i%2 == 1 {
				d.Direction, d.Status, from, to = Inbound, StatusReceived, to, other
			}
			d.PartyIdx = [][]byte{h.phoneIdx(from), h.phoneIdx(to)}
			body := fmt.Sprintf("Message %d", i)
			if err := h.seal(d, &payload{From: from, To: to, Body: &body}); err != nil {
				b.Fatal(err)
			}
			batch = append(batch, d)
			if len(batch) == 5000 || i == n-1 {
				if err := h.docs.Docs.InsertMany(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if _, err := h.docs.Reindex(ctx); err != nil {
			b.Fatal(err)
		}
		// The cursor 90% down each list, from its index range alone (the
		// key of the entry there), as the list would have returned it.
		zero, _ := strconv.ParseInt(store.TimeKey(time.UnixMilli(0)), 10, 64)
		for name, q := range queries {
			var idx []byte
			if q.Phone != "" {
				idx = h.phoneIdx(q.Phone)
			}
			r := h.listRange(q, idx)
			total, err := h.docs.Entries.Count(ctx, r)
			if err != nil || total == 0 {
				b.Fatalf("%s at %d: %d entries (%v)", name, n, total, err)
			}
			skip := int(total) * 9 / 10
			r.Limit = skip
			keys, err := store.All[struct {
				ID string `bson:"_id"`
			}](ctx, h.docs.Entries, r)
			if err != nil || len(keys) != skip {
				b.Fatalf("%s at %d: %d keys (%v)", name, n, len(keys), err)
			}
			tk, id, _ := strings.Cut(strings.TrimPrefix(keys[skip-1].ID, r.From), "/")
			ms, _ := strconv.ParseInt(tk, 10, 64)
			f.deep[name] = switchboard.EncodeCursor(strconv.FormatInt(ms-zero, 10), id)
			f.want[name], f.want[name+"-deep"] = min(50, int(total)), min(50, int(total)-skip)
		}
		b.Logf("%d messages in %v", n, time.Since(start).Round(time.Millisecond))
		fx[s] = f
	}
	type measure struct {
		name string
		run  func(f *fixture) error
	}
	var ms []measure
	for name, q := range queries {
		for _, deep := range []bool{false, true} {
			label := name
			if deep {
				label += "-deep"
			}
			ms = append(ms, measure{label, func(f *fixture) error {
				q := q
				q.Limit = 50
				if deep {
					q.Cursor = f.deep[name]
				}
				page, _, err := f.h.List(ctx, q)
				if err == nil && len(page) != f.want[label] {
					err = fmt.Errorf("%s: a page of %d, want %d", label, len(page), f.want[label])
				}
				return err
			}})
		}
	}
	ms = append(ms, measure{"erase-50", func(f *fixture) error {
		return f.h.RedactParty(ctx, f.erase, nil)
	}})
	took := map[string]*[2]time.Duration{}
	for _, m := range ms {
		took[m.name] = &[2]time.Duration{}
	}
	for i := 0; b.Loop(); i++ {
		for _, m := range ms {
			for k := range fx {
				s := (i + k) % 2
				start := time.Now()
				if err := m.run(&fx[s]); err != nil {
					b.Fatal(err)
				}
				took[m.name][s] += time.Since(start)
			}
		}
	}
	for _, m := range ms {
		t := took[m.name]
		b.ReportMetric(float64(t[0].Microseconds())/1000/float64(b.N), m.name+"-100-ms")
		b.ReportMetric(float64(t[1].Microseconds())/1000/float64(b.N), m.name+"-100k-ms")
		b.ReportMetric(float64(t[1])/float64(t[0]), m.name+"-ratio")
		// A page 90% down 100 messages, or of a filter few of them match,
		// holds fewer than 50: per message returned is the fair ratio.
		if n0, n1 := fx[0].want[m.name], fx[1].want[m.name]; n0 > 0 && n1 > 0 && n0 != n1 {
			b.ReportMetric(float64(t[1])/float64(n1)/(float64(t[0])/float64(n0)), m.name+"-per-message-ratio")
		}
	}
}

func ptr[T any](v T) *T { return &v }
