package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
)

// BenchmarkRegisterActivate measures POST /v1/customers + POST .../activate
// through real HTTP (sandbox Twilio), and, as its same-run baseline, the bare
// driver inserting an equivalent customer document into the same engine.
// It reports the ratio.
func BenchmarkRegisterActivate(b *testing.B) {
	db := storetest.MustOpen(b)
	master, _, err := crypto.LoadOrCreateDevMasterKey(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	keyring := crypto.NewKeyring(db.Keys.Collection("customer_keys"), master)
	b.Cleanup(keyring.Close)
	svc := tenants.NewService(tenants.Config{Control: db.Control, Keyring: keyring, Twilio: twilio.NewSandbox(),
		DropCustomerData: db.DropCustomer, Logger: storetest.Logger()})
	srv := httptest.NewServer(NewRouter(Config{Tenants: svc, Idempotency: idempotency.NewStore(db.Control.Collection("idempotency")),
		Logger: storetest.Logger(), Registry: prometheus.NewRegistry(), Ready: db.Ping, PartnerRate: 1e6, PartnerBurst: 1e6}))
	b.Cleanup(srv.Close)
	_, key, err := svc.CreatePartner(b.Context(), "Bench")
	if err != nil {
		b.Fatal(err)
	}
	industry := tenants.Industries()[0].ID
	post := func(path, body string) string {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
		return string(raw)
	}
	var full, bare time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		out := post("/v1/customers", fmt.Sprintf(`{"space":"bench-%d","industryId":%q,"label":"Bench Customer %d"}`, n, industry, n))
		id := out[strings.Index(out, `"id":"`)+6:][:36]
		post("/v1/customers/"+id+"/activate", `{"expectedVersion":1}`)
		full += time.Since(start)

		now := time.Now().UTC()
		doc := bson.D{
			{Key: "_id", Value: uuid.Must(uuid.NewV7()).String()}, {Key: "partnerId", Value: "p"},
			{Key: "space", Value: fmt.Sprintf("bare-%d", n)}, {Key: "industryId", Value: industry},
			{Key: "status", Value: "ACTIVE"}, {Key: "version", Value: 2}, {Key: "label", Value: make([]byte, 60)},
			{Key: "twilio", Value: bson.D{{Key: "accountSid", Value: "AC0123456789abcdef0123456789abcdef"}, {Key: "status", Value: "active"}, {Key: "authToken", Value: make([]byte, 70)}}},
			{Key: "createdAt", Value: now}, {Key: "updatedAt", Value: now}, {Key: "activatedAt", Value: now},
		}
		start = time.Now()
		if _, err := db.Control.Collection("bare_customers").InsertOne(b.Context(), doc); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(start)
		n++
	}
	b.ReportMetric(float64(full.Microseconds())/float64(n), "register+activate-µs")
	b.ReportMetric(float64(bare.Microseconds())/float64(n), "bare-insert-µs")
	b.ReportMetric(float64(full)/float64(bare), "ratio")
}
