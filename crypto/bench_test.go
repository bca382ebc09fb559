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

// The three benchmarks of issue 2, meant to run together (make bench): our
// Seal+Open of a 160-byte value, the raw XChaCha20-Poly1305 floor, and
// age-encrypting the value on its own.
var value160 = bytes.Repeat([]byte("v"), 160)

func BenchmarkSealOpen(b *testing.B) {
	c, _ := newCipher(b, "0193a0c4-1111-7000-8000-000000000001")
	f := crypto.Field{Collection: "contacts", DocumentID: "0193a0c4-2222-7000-8000-000000000002", Name: "firstName"}
	b.SetBytes(int64(len(value160)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Seal(f, value160)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Open(f, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawXChaCha20Poly1305(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	aead, _ := chacha20poly1305.NewX(key)
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
		w.Close()
		io.Copy(io.Discard, &buf)
	}
}
