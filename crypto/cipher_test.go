package crypto_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

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
	c, key := newCipher(t, "cust-a")
	for _, pt := range [][]byte{{}, []byte("x"), []byte("ann@example.com"), bytes.Repeat([]byte("z"), 100000)} {
		sealed, err := c.Seal(field, pt)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + 1 + len("k1") + 24 + len(pt) + 16; len(sealed) != want {
			t.Fatalf("sealed %d bytes into %d, want %d", len(pt), len(sealed), want)
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

	// A cipher rebuilt from the same key (the keyring does so after its
	// cache forgets) opens what the first one sealed.
	again, err := crypto.NewCipher("cust-a", "k1", key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(field, a); err != nil || string(got) != "same" {
		t.Fatalf("rebuilt cipher: %q %v", got, err)
	}
}

// TestSealedFormat opens a sealed value with nothing but the documented
// recipe, pinning the stored format: stored data must keep opening.
func TestSealedFormat(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	sealed, err := c.Seal(field, []byte("Ann Example"))
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != 1 || sealed[1] != 2 || string(sealed[2:4]) != "k1" {
		t.Fatalf("header % x, want 01 02 'k1'", sealed[:4])
	}
	sealKey, err := hkdf.Key(sha256.New, key, nil, "switchboard seal v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		t.Fatal(err)
	}
	ad := append([]byte(nil), sealed[:4]...)
	for _, s := range []string{"cust-a", field.Collection, field.DocumentID, field.Name} {
		ad = append(ad, byte(len(s)))
		ad = append(ad, s...)
	}
	got, err := aead.Open(nil, sealed[4:28], sealed[28:], ad)
	if err != nil || string(got) != "Ann Example" {
		t.Fatalf("open by the recipe: %q %v", got, err)
	}
}

func TestNewCipherCopiesKey(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	sealed, _ := c.Seal(field, []byte("v"))
	index := c.BlindIndex("email", "ann@example.com")
	clear(key)
	if got, err := c.Open(field, sealed); err != nil || string(got) != "v" {
		t.Fatalf("open after the caller cleared its key: %q %v", got, err)
	}
	if !bytes.Equal(index, c.BlindIndex("email", "ann@example.com")) {
		t.Fatal("blind index changed after the caller cleared its key")
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
	withVersion := func(v byte) []byte { b := bytes.Clone(sealed); b[0] = v; return b }
	cases := map[string]func() ([]byte, error){
		"other field":                 func() ([]byte, error) { return c.Open(crypto.Field{"contacts", "doc-1", "phone"}, sealed) },
		"other document":              func() ([]byte, error) { return c.Open(crypto.Field{"contacts", "doc-2", "email"}, sealed) },
		"other collection":            func() ([]byte, error) { return c.Open(crypto.Field{"timeline", "doc-1", "email"}, sealed) },
		"other customer":              func() ([]byte, error) { return other.Open(field, sealed) },
		"same key, other customer id": func() ([]byte, error) { return sameKeyOtherCustomer.Open(field, sealed) },
		"same key, other key id":      func() ([]byte, error) { return sameKeyOtherKeyID.Open(field, sealed) },
		"unknown version 0":           func() ([]byte, error) { return c.Open(field, withVersion(0)) },
		"unknown version 2":           func() ([]byte, error) { return c.Open(field, withVersion(2)) },
		"nil":                         func() ([]byte, error) { return c.Open(field, nil) },
		"empty":                       func() ([]byte, error) { return c.Open(field, []byte{}) },
		"truncated":                   func() ([]byte, error) { return c.Open(field, sealed[:len(sealed)-1]) },
		"header only":                 func() ([]byte, error) { return c.Open(field, sealed[:4]) },
		"header and nonce only":       func() ([]byte, error) { return c.Open(field, sealed[:28]) },
		"appended byte":               func() ([]byte, error) { return c.Open(field, append(bytes.Clone(sealed), 0)) },
		"garbage":                     func() ([]byte, error) { return c.Open(field, bytes.Repeat([]byte{1}, 80)) },
		"garbage with our header":     func() ([]byte, error) { return c.Open(field, append(bytes.Clone(sealed[:4]), make([]byte, 60)...)) },
		// Length-prefixed associated data: moving bytes between coordinates must not collide.
		"shifted coordinates": func() ([]byte, error) { return c.Open(crypto.Field{"contactsdoc-1", "", "email"}, sealed) },
		"shifted into name":   func() ([]byte, error) { return c.Open(crypto.Field{"contacts", "doc-", "1email"}, sealed) },
	}
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			tampered := bytes.Clone(sealed)
			tampered[i] ^= bit
			cases[fmt.Sprintf("bit %#x flipped at %d", bit, i)] = func() ([]byte, error) { return c.Open(field, tampered) }
		}
	}
	for name, open := range cases {
		got, err := open()
		if err != crypto.ErrDecrypt || got != nil {
			t.Errorf("%s: got %q, %v; want nil, ErrDecrypt", name, got, err)
		}
	}
	// The untouched value still opens: the failures above were the changes'.
	if got, err := c.Open(field, sealed); err != nil || string(got) != "Ann Example" {
		t.Fatalf("original: %q %v", got, err)
	}
}

func TestBlindIndex(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	a := c.BlindIndex("email", "ann@example.com")

	// Pin the construction: stored indexes must keep matching.
	indexKey, err := hkdf.Key(sha256.New, key, nil, "switchboard blind index v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, indexKey)
	m.Write(binary.AppendUvarint(nil, uint64(len("email"))))
	m.Write([]byte("email" + "ann@example.com"))
	if want := m.Sum(nil); !bytes.Equal(a, want) {
		t.Fatalf("blind index %x, want %x", a, want)
	}

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
	sealKey, _ := hkdf.Key(sha256.New, key, nil, "switchboard seal v1", 32)
	if bytes.Equal(indexKey, sealKey) || bytes.Equal(indexKey, key) {
		t.Fatal("the index subkey is not separate")
	}
}

func TestSecretsRedactThemselves(t *testing.T) {
	c, key := newCipher(t, "cust-a")
	indexKey, _ := hkdf.Key(sha256.New, key, nil, "switchboard blind index v1", 32)
	sealKey, _ := hkdf.Key(sha256.New, key, nil, "switchboard seal v1", 32)
	master, _, err := crypto.LoadOrCreateDevMasterKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	text := slog.New(slog.NewTextHandler(&logs, nil))
	text.Info("x", "cipher", c, "master", master, "cipherValue", *c, "masterValue", *master)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cipher", c, "master", master, slog.Group("g", "c", *c))
	var out strings.Builder
	for _, v := range []any{c, *c, master, *master, struct{ C crypto.Cipher }{*c}, []crypto.MasterKey{*master}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	out.WriteString(logs.String())
	all := out.String()
	for name, secret := range map[string][]byte{"key": key, "index subkey": indexKey, "seal subkey": sealKey} {
		for _, enc := range []string{hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
			hex.EncodeToString(secret[:8]), fmt.Sprint(secret[:8]), fmt.Sprintf("%#v", secret[:8])} {
			if strings.Contains(all, enc) {
				t.Fatalf("%s printed as %s:\n%s", name, enc, all)
			}
		}
	}
	if strings.Contains(all, "AGE-SECRET-KEY") {
		t.Fatalf("master identity printed:\n%s", all)
	}
	if got, want := fmt.Sprint(c), "Cipher(customer cust-a, key k1, [redacted])"; got != want {
		t.Fatalf("cipher prints %q, want %q", got, want)
	}
	if got, want := fmt.Sprintf("%#v", master), "MasterKey(1 identities, current "+master.ID()+", [redacted])"; got != want {
		t.Fatalf("master key prints %q, want %q", got, want)
	}
}

func TestNewCipherRejectsBadKeys(t *testing.T) {
	for name, tc := range map[string]struct {
		keyID string
		key   []byte
	}{
		"16-byte key":  {"k", make([]byte, 16)},
		"33-byte key":  {"k", make([]byte, 33)},
		"nil key":      {"k", nil},
		"empty key id": {"", make([]byte, 32)},
		"long key id":  {strings.Repeat("k", 256), make([]byte, 32)},
	} {
		if c, err := crypto.NewCipher("c", tc.keyID, tc.key); err == nil || c != nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := crypto.NewCipher("c", strings.Repeat("k", 255), make([]byte, 32)); err != nil {
		t.Fatalf("255-byte key id: %v", err)
	}
	if errors.Is(crypto.ErrDecrypt, crypto.ErrKeyNotFound) || errors.Is(crypto.ErrKeyNotFound, crypto.ErrNoIdentity) {
		t.Fatal("sentinels alias")
	}
}

// fuzzSealed are values sealed once by fuzzCipher for field, fixed so that
// every fuzzing worker agrees on which inputs are authentic.
var fuzzSealed = []struct{ plaintext, sealed string }{
	{"", "01026b312fa9651bd3d1f0fd910e448f6cdcf3d598793d3fe67e0d340e714701d0cb9f68d97a44c0333e2712"},
	{"a", "01026b31a92e123c0cf4bc3e1b8e6c8ab81c1bb6d7e6492a1e14b74eeba2b94196574f39b70bc6d7c978421da9"},
	{"ann@example.com", "01026b3115f2c016ea2ee76e202d1c91aa003b7f9877991098a09db0c27a7415851f615ac49378fa23b5c81403bf060d0f96fce8c58573a8389b71"},
	{strings.Repeat("x", 40), "01026b31c522cdfab3b97c86c70818c96a9a97e6ad3ca63e0e1ea952b4b5e3904bbf3709cf6388fde71dbbd1e2e083a7f4602f0b9b21397cf123416c3ff864ad235e6f334ff9431420275cd0ac25bb4b98e40569"},
}

func fuzzCipher(tb testing.TB) *crypto.Cipher {
	c, err := crypto.NewCipher("cust-fuzz", "k1", bytes.Repeat([]byte{7}, crypto.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func FuzzOpen(f *testing.F) {
	c := fuzzCipher(f)
	// The only inputs allowed to open: values really sealed under this key.
	authentic := map[string]string{}
	for _, v := range fuzzSealed {
		b, err := hex.DecodeString(v.sealed)
		if err != nil {
			f.Fatal(err)
		}
		authentic[string(b)] = v.plaintext
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 'k', '1'})
	f.Add(append([]byte{1, 2, 'k', '1'}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := c.Open(field, b)
		if err != nil {
			if err != crypto.ErrDecrypt || pt != nil {
				t.Fatalf("open failed with %q, %v; want nil, ErrDecrypt", pt, err)
			}
			if want, ok := authentic[string(b)]; ok {
				t.Fatalf("authentic value (%q) did not open", want)
			}
			return
		}
		if want, ok := authentic[string(b)]; !ok || string(pt) != want {
			t.Fatalf("%x opened as %q: not one of the values sealed here", b, pt)
		}
	})
}
