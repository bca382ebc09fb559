package crypto_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/crypto"
)

func newCipher(t testing.TB, customerID string) (*crypto.Cipher, []byte) {
	t.Helper()
	key := make([]byte, crypto.KeySize)
	rand.Read(key)
	c, err := crypto.NewCipher(customerID, "k1", key)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

var field = crypto.Field{Collection: "contacts", DocumentID: "doc-1", Name: "email"}

func TestSealOpenRoundTrip(t *testing.T) {
	c, _ := newCipher(t, "cust-a")
	for _, pt := range [][]byte{nil, []byte("x"), []byte("ann@example.com"), bytes.Repeat([]byte("z"), 100000)} {
		sealed, err := c.Seal(field, pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) >= 8 && bytes.Contains(sealed, pt) {
			t.Fatal("plaintext visible in the sealed value")
		}
		got, err := c.Open(field, sealed)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("open: %q %v, want %q", got, err, pt)
		}
	}
	a, _ := c.Seal(field, []byte("same"))
	b, _ := c.Seal(field, []byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same value are equal: nonce reuse")
	}
}

func TestOpenFailsOpaquely(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	sealed, err := c.Seal(field, []byte("Ann Example"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newCipher(t, "cust-b")
	sameKeyOtherCustomer, _ := crypto.NewCipher("cust-b", "k1", key)
	sameKeyOtherKeyID, _ := crypto.NewCipher("cust-a", "k2", key)
	cases := map[string]func() ([]byte, error){
		"other field":                 func() ([]byte, error) { return c.Open(crypto.Field{"contacts", "doc-1", "phone"}, sealed) },
		"other document":              func() ([]byte, error) { return c.Open(crypto.Field{"contacts", "doc-2", "email"}, sealed) },
		"other collection":            func() ([]byte, error) { return c.Open(crypto.Field{"timeline", "doc-1", "email"}, sealed) },
		"other customer":              func() ([]byte, error) { return other.Open(field, sealed) },
		"same key, other customer id": func() ([]byte, error) { return sameKeyOtherCustomer.Open(field, sealed) },
		"same key, other key id":      func() ([]byte, error) { return sameKeyOtherKeyID.Open(field, sealed) },
		"empty":                       func() ([]byte, error) { return c.Open(field, nil) },
		"truncated":                   func() ([]byte, error) { return c.Open(field, sealed[:len(sealed)-1]) },
		"header only":                 func() ([]byte, error) { return c.Open(field, sealed[:4]) },
		"garbage":                     func() ([]byte, error) { return c.Open(field, bytes.Repeat([]byte{1}, 80)) },
	}
	// Length-prefixed associated data: shifting bytes between coordinates must not collide.
	cases["shifted coordinates"] = func() ([]byte, error) { return c.Open(crypto.Field{"contactsdoc-1", "", "email"}, sealed) }
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		cases[fmt.Sprintf("bit flipped at %d", i)] = func() ([]byte, error) { return c.Open(field, tampered) }
	}
	for name, open := range cases {
		got, err := open()
		if err != crypto.ErrDecrypt || got != nil {
			t.Errorf("%s: got %q, %v; want nil, ErrDecrypt", name, got, err)
		}
	}
}

func TestBlindIndex(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	a := c.BlindIndex("email", "ann@example.com")
	if len(a) != 32 || !bytes.Equal(a, c.BlindIndex("email", "ann@example.com")) {
		t.Fatal("blind index is not a stable 32-byte value")
	}
	if bytes.Equal(a, c.BlindIndex("crmId", "ann@example.com")) {
		t.Fatal("the same value under two field names has the same index")
	}
	if bytes.Equal(c.BlindIndex("e", "mailx"), c.BlindIndex("em", "ailx")) {
		t.Fatal("name/value boundary is ambiguous")
	}
	other, _ := newCipher(t, "cust-b")
	if bytes.Equal(a, other.BlindIndex("email", "ann@example.com")) {
		t.Fatal("two customers share blind indexes")
	}
	if bytes.Contains(a, key) || bytes.Contains(a, []byte("ann")) {
		t.Fatal("index leaks its inputs")
	}
}

func TestSecretsRedactThemselves(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	master, _, err := crypto.LoadOrCreateDevMasterKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "cipher", c, "master", master)
	out := fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c, c, c) +
		fmt.Sprintf("%v %+v %#v %s %q %x", master, master, master, master, master, master) + logs.String()
	if strings.Contains(out, "AGE-SECRET-KEY") || strings.Contains(out, fmt.Sprintf("%x", key)) ||
		strings.Contains(strings.ToLower(out), strings.ToLower(fmt.Sprintf("%X", key[:8]))) {
		t.Fatalf("secret printed: %s", out)
	}
	if !strings.Contains(out, "redacted") {
		t.Fatalf("unexpected rendering: %s", out)
	}
}

func TestNewCipherRejectsBadKeys(t *testing.T) {
	if _, err := crypto.NewCipher("c", "k", make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := crypto.NewCipher("c", "", make([]byte, 32)); err == nil {
		t.Fatal("empty key id accepted")
	}
	if errors.Is(crypto.ErrDecrypt, crypto.ErrKeyNotFound) {
		t.Fatal("sentinels alias")
	}
}

func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{7}, crypto.KeySize)
	c, err := crypto.NewCipher("cust-fuzz", "k1", key)
	if err != nil {
		f.Fatal(err)
	}
	for _, pt := range []string{"", "a", "ann@example.com", strings.Repeat("x", 300)} {
		s, _ := c.Seal(field, []byte(pt))
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 'k', '1'})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := c.Open(field, b)
		if err != nil {
			if err != crypto.ErrDecrypt || pt != nil {
				t.Fatalf("open failed with %v and %q", err, pt)
			}
			return
		}
		// It opened: it must be an authentic value, so re-sealing and
		// opening what came out must round-trip.
		again, err := c.Seal(field, pt)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := c.Open(field, again); err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("round trip of an opened value failed: %v", err)
		}
	})
}
