package tokens

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// BenchmarkVerify validates a token (parse, verify, claims, cached customer
// status) against, as its same-run baseline, a bare ed25519.Verify of the
// same token's signature.
func BenchmarkVerify(b *testing.B) {
	s, _, _ := newService(b)
	ctx := b.Context()
	tok, err := s.Mint(ctx, MintInput{CustomerID: cust, Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := s.current(ctx)
	parts := strings.Split(tok.AccessToken, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	msg := []byte(parts[0] + "." + parts[1])
	var ours, bare time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		if _, err := s.Verify(ctx, tok.AccessToken); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		start = time.Now()
		if !ed25519.Verify(k.pub, msg, sig) {
			b.Fatal("bare verify failed")
		}
		bare += time.Since(start)
		n++
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(n), "verify-ns")
	b.ReportMetric(float64(bare.Nanoseconds())/float64(n), "ed25519-ns")
	b.ReportMetric(float64(ours)/float64(bare), "ratio")
}
