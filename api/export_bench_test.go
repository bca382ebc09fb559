package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
)

// exportContacts is the size of the exported customer.
const exportContacts = 10000

// exportFixture is one customer holding exportContacts contacts (four made
// through the API, the rest cloned from them as scanCloneContacts does, each
// with its timeline items) and the identity its exports are encrypted to.
type exportFixture struct {
	p        *scanPlatform
	contacts *contacts.Service
	customer string
	timeline int // timeline items of the customer
	identity *age.X25519Identity
}

func buildExportFixture(b *testing.B) *exportFixture {
	start := time.Now()
	ctx := context.Background()
	p := newScanPlatform(b)
	cs := p.contacts
	f := &exportFixture{p: p, contacts: cs}
	var tok string
	f.customer, tok = p.customer(b, p.keyA, "export")
	var res struct {
		Results []struct{ ID, Outcome string }
	}
	raw := p.call(b, "POST", "/v1/contacts", tok, scanContactTemplates)
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != 4 {
		b.Fatalf("contact templates: %v %s", err, raw)
	}
	var tpls []string
	for _, r := range res.Results {
		if r.Outcome != "created" {
			b.Fatalf("contact templates: %s", raw)
		}
		tpls = append(tpls, r.ID)
	}
	scanCloneContacts(b, p, f.customer, tpls, exportContacts-len(tpls), 0)

	cdb := p.db.Tenant(f.customer)
	if got, err := cdb.Collection("contacts").Count(ctx, store.Range{}); err != nil || got != exportContacts {
		b.Fatalf("contacts holds %d (%v), want %d", got, err, exportContacts)
	}
	got, err := cdb.Collection("timeline").Count(ctx, store.Range{})
	if err != nil || got < exportContacts {
		b.Fatalf("timeline holds %d (%v), want at least %d", got, err, exportContacts)
	}
	f.timeline = int(got)
	if f.identity, err = age.GenerateX25519Identity(); err != nil {
		b.Fatal(err)
	}
	b.Logf("fixture of %d contacts and %d timeline items built in %v", exportContacts, f.timeline, time.Since(start).Round(time.Millisecond))
	return f
}

// export runs POST /v1/customers/{id}/export through the real router and
// copies the whole age stream into w; it returns the stream's size.
func (f *exportFixture) export(b *testing.B, w io.Writer) int64 {
	req, err := http.NewRequest("POST", f.p.url+"/v1/customers/"+f.customer+"/export",
		strings.NewReader(`{"recipient":"`+f.identity.Recipient().String()+`"}`))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.p.keyA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		b.Fatalf("export: %d %s", resp.StatusCode, raw)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		b.Fatalf("export stream: %v", err)
	}
	return n
}

// read is the baseline: the customer's contacts through the contacts
// service alone (Open, Each), discarded. It returns how many it read.
func (f *exportFixture) read(b *testing.B) int {
	ctx := context.Background()
	h, err := f.contacts.Open(ctx, f.customer)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	if err := h.Each(ctx, func(contacts.Contact) error { n++; return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}

// check exports once, decrypts the stream with the recipient's identity and
// checks that it holds the customer, every contact and every timeline item.
func (f *exportFixture) check(b *testing.B) {
	var sealed bytes.Buffer
	f.export(b, &sealed)
	plain, err := age.Decrypt(&sealed, f.identity)
	if err != nil {
		b.Fatal(err)
	}
	kinds := map[string]int{}
	sc := bufio.NewScanner(plain)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Kind string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			b.Fatalf("line %.200q: %v", sc.Text(), err)
		}
		kinds[line.Kind]++
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err) // also a stream that fails to authenticate (cut short)
	}
	if kinds["customer"] != 1 || kinds["contact"] != exportContacts || kinds["timeline"] != f.timeline || kinds["event"] == 0 {
		b.Fatalf("export holds %v, want 1 customer, %d contacts, %d timeline items, events", kinds, exportContacts, f.timeline)
	}
	if n := f.read(b); n != exportContacts {
		b.Fatalf("baseline read %d contacts, want %d", n, exportContacts)
	}
}

// peakHeapGrowth runs one export while a goroutine samples HeapInuse every
// 2 ms, and returns the highest HeapInuse seen minus HeapInuse after a GC
// before the export (it logs both, and how many GCs ran during it).
func (f *exportFixture) peakHeapGrowth(b *testing.B) uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, gc0 := ms.HeapInuse, ms.NumGC
	peak := base
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	}()
	f.export(b, io.Discard)
	close(stop)
	<-done
	runtime.ReadMemStats(&ms)
	b.Logf("heap in use before the export %.1f MiB, peak %.1f MiB, %d GCs during it",
		float64(base)/(1<<20), float64(peak)/(1<<20), ms.NumGC-gc0)
	return peak - base
}

// BenchmarkExport10000 measures POST /v1/customers/{id}/export of a
// customer with 10,000 contacts (and their timeline items) through the real
// router, the whole age stream read and discarded, and, as its same-run
// baseline, reading the same 10,000 contacts through the contacts service
// alone (Open, Each), alternating which goes first. It reports ms/op of
// each, the ratio rate(export)/rate(read) = read time / export time (target
// ≥ 0.5), and the peak heap growth during one export (target < 32 MiB).
//
// The fixture takes a while to build: run it with -benchtime=Nx.
func BenchmarkExport10000(b *testing.B) {
	f := buildExportFixture(b)
	f.check(b) // and warms caches: keys, indexes ensured, the statement paths
	growth := f.peakHeapGrowth(b)
	var exp, rd time.Duration
	var size int64
	n := 0
	for b.Loop() {
		for k := range 2 {
			start := time.Now()
			if (n+k)%2 == 0 {
				size = f.export(b, io.Discard)
				exp += time.Since(start)
			} else {
				f.read(b)
				rd += time.Since(start)
			}
		}
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(n) }
	b.ReportMetric(ms(exp), "export-ms/op")
	b.ReportMetric(ms(rd), "read-ms/op")
	b.ReportMetric(float64(rd)/float64(exp), "ratio")
	b.ReportMetric(float64(growth)/(1<<20), "peak-heap-MiB")
	b.Logf("age stream %.1f MiB", float64(size)/(1<<20))
}
