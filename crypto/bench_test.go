package crypto_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/switchboard/switchboard/crypto"
)

// Benchmarks meant to run together (go test -run '^$' -bench . ./crypto/):
// our Seal+Open of a 160-byte value against its floor, raw
// XChaCha20-Poly1305 seal+open of the same bytes with a fresh nonce, and
// age-encrypting (and decrypting) the value on its own, which is what
// sealing each field to the master recipient would cost instead.
var value160 = bytes.Repeat([]byte("v"), 160)

var benchField = crypto.Field{Collection: "contacts", DocumentID: "0193a0c4-2222-7000-8000-000000000002", Name: "firstName"}

func BenchmarkSealOpen(b *testing.B) {
	c, _ := newCipher(b, "0193a0c4-1111-7000-8000-000000000001")
	b.SetBytes(int64(len(value160)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Seal(benchField, value160)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Open(benchField, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawXChaCha20Poly1305(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	b.SetBytes(int64(len(value160)))
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(nonce)
		s := aead.Seal(nil, nonce, value160, nil)
		if _, err := aead.Open(nil, nonce, s, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAgeEncrypt(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	r := id.Recipient()
	b.SetBytes(int64(len(value160)))
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(value160)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAgeEncryptDecrypt(b *testing.B) {
	id, _ := age.GenerateX25519Identity()
	r := id.Recipient()
	b.SetBytes(int64(len(value160)))
	b.ReportAllocs()
	for b.Loop() {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(value160)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		pr, err := age.Decrypt(&buf, id)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, pr); err != nil || n != int64(len(value160)) {
			b.Fatalf("decrypted %d bytes: %v", n, err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	c, _ := newCipher(b, "0193a0c4-1111-7000-8000-000000000001")
	b.ReportAllocs()
	for b.Loop() {
		c.BlindIndex("email", "ann@example.com")
	}
}
