package tenants_test

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

// BenchmarkShredCertificate measures the shred of a TERMINATED customer
// (Purge with one customer due: lease, canary, key destroyed and scrubbed,
// erasure verified, SHREDDED, database dropped) by a service that issues
// the erasure certificate (Config.Certificates a real tokens.ErasureKeys)
// and, as its same-run baseline, by one that does not (nil). The two
// services are wired as wiring.Build wires production's (sandbox Twilio,
// ScrubKeys, DropCustomer) on the same databases and differ only in
// Certificates. Each iteration shreds one fresh customer with each,
// alternating which goes first; it reports ms/op of each and the ratio
// with/without (target ≤ 1.10).
//
// Each iteration sets up two customers (untimed): run it with -benchtime=Nx.
func BenchmarkShredCertificate(b *testing.B) {
	ctx := b.Context()
	pl := wiringtest.New(b, wiringtest.Options{})
	tw := twilio.NewSandbox()
	erasure := tokens.NewErasureKeys(pl.DB.Control.Collection("erasure_keys"), pl.Master, nil)
	newService := func(certs tenants.CertificateSigner) *tenants.Service {
		return tenants.NewService(tenants.Config{
			Certificates: certs, Issuer: wiringtest.Issuer, Version: "bench",
			Control: pl.DB.Control, Keyring: pl.Keyring, Twilio: tw,
			Data: pl.DB, ScrubKeys: pl.DB.ScrubKeys, Logger: storetest.Logger(),
		})
	}
	const with, without = 0, 1
	svcs := [2]*tenants.Service{with: newService(erasure), without: newService(nil)}
	p, _, err := svcs[with].CreatePartner(ctx, "Bench")
	if err != nil {
		b.Fatal(err)
	}
	data := bson.D{{Key: "sealed", Value: make([]byte, 200)}}
	months := 1
	made := 0
	// terminated makes a TERMINATED customer with contact info and a few
	// documents in its database, due one month from now.
	terminated := func(svc *tenants.Service) tenants.Customer {
		made++
		space := fmt.Sprintf("shred-%d", made)
		c, err := svc.Register(ctx, p, tenants.RegisterInput{Space: space, IndustryID: industry, Label: "Label of " + space})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.Activate(ctx, p, c.ID, tenants.AnyVersion); err != nil {
			b.Fatal(err)
		}
		if _, err := svc.UpdateContactInfo(ctx, p, c.ID, tenants.AnyVersion, contactInput()); err != nil {
			b.Fatal(err)
		}
		if c, err = svc.Terminate(ctx, p, c.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "TEMPORARY", Period: &months}); err != nil {
			b.Fatal(err)
		}
		docs := make([]any, 10)
		for j := range docs {
			docs[j] = data
		}
		if err := pl.DB.Tenant(c.ID).Collection("contacts").InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
		return c
	}
	// shred purges c (the only customer due) with variant v and returns how
	// long the purge took; then it checks the certificate is there or not.
	shred := func(v int, c tenants.Customer) time.Duration {
		start := time.Now()
		sum, err := svcs[v].Purge(ctx, tenants.PurgeOptions{Now: *c.Retention.ShredAt}, func(r tenants.PurgeResult) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		})
		took := time.Since(start)
		if err != nil || sum.Shredded != 1 || sum.Due != 1 {
			b.Fatalf("purge: %+v %v", sum, err)
		}
		_, claims, err := svcs[v].ErasureCertificate(ctx, p, c.ID)
		switch {
		case v == with && (err != nil || claims["sub"] != c.ID):
			b.Fatalf("certificate of %s: %v %v", c.ID, claims, err)
		case v == without && err == nil:
			b.Fatalf("a certificate of %s without Certificates", c.ID)
		}
		return took
	}
	// Warm up both (the first certificate creates the erasure key).
	for v := range svcs {
		shred(v, terminated(svcs[v]))
	}
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k := range svcs {
			v := (n + k) % len(svcs)
			b.StopTimer()
			c := terminated(svcs[v])
			b.StartTimer()
			took[v] += shred(v, c)
		}
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(n) }
	b.ReportMetric(ms(took[with]), "cert-ms/op")
	b.ReportMetric(ms(took[without]), "nocert-ms/op")
	b.ReportMetric(float64(took[with])/float64(took[without]), "ratio")
}
