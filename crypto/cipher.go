package crypto

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of a customer key.
const KeySize = 32

// formatV1 is the first byte of every sealed value: XChaCha20-Poly1305
// under the HKDF "seal" subkey, then the key id (one length byte and its
// bytes), the 24-byte nonce and the ciphertext with its tag.
const formatV1 byte = 1

// HKDF info strings: one subkey per purpose, so a blind index can never be
// confused with a ciphertext key.
const (
	infoSeal  = "switchboard seal v1"
	infoIndex = "switchboard blind index v1"
)

// Field names where a sealed value lives. It is bound into the associated
// data, with the customer id, so a value moved to another field, document,
// collection or tenant fails to open.
type Field struct {
	Collection string
	DocumentID string
	Name       string
}

// Cipher seals and opens one customer's fields and computes its blind
// indexes. Callers never see a nonce or key bytes. It is safe for concurrent
// use and never prints its keys.
type Cipher struct {
	customerID string
	keyID      string
	aead       cipher.AEAD
	indexKey   []byte
	header     []byte // format version and key id: the prefix of every sealed value
	adPrefix   []byte // header and length-prefixed customer id: the fixed part of every AD
}

// NewCipher derives a customer's sealing and blind-index subkeys from its
// 32-byte key (HKDF-SHA256, once). It keeps no reference to key, so the
// caller may clear it afterwards. keyID (1 to 255 bytes) is written into
// every sealed value, so values sealed under another key fail to open.
func NewCipher(customerID, keyID string, key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("new cipher: key must be %d bytes", KeySize)
	}
	if len(keyID) == 0 || len(keyID) > 255 {
		return nil, errors.New("new cipher: key id must be 1 to 255 bytes")
	}
	sealKey, err := hkdf.Key(sha256.New, key, nil, infoSeal, chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	aead, err := chacha20poly1305.NewX(sealKey)
	clear(sealKey)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	indexKey, err := hkdf.Key(sha256.New, key, nil, infoIndex, 32)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	header := append([]byte{formatV1, byte(len(keyID))}, keyID...)
	adPrefix := appendPrefixed(append([]byte(nil), header...), customerID)
	c := &Cipher{customerID: customerID, keyID: keyID, aead: aead, indexKey: indexKey, header: header, adPrefix: adPrefix}
	// A Cipher is shared by every request of its customer, so nobody can
	// tell when the last one is done with it, least of all the keyring's
	// cache: zeroing it on eviction would make a request still holding it
	// compute wrong blind indexes. Its own key bytes are zeroed once it is
	// unreachable instead. (The AEAD keeps its key inside x/crypto, out of
	// reach.)
	runtime.AddCleanup(c, func(k []byte) { clear(k) }, indexKey)
	return c, nil
}

// CustomerID is the customer this cipher belongs to.
func (c *Cipher) CustomerID() string { return c.customerID }

// KeyID identifies the customer key this cipher was derived from.
func (c *Cipher) KeyID() string { return c.keyID }

func appendPrefixed(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// adPool holds associated-data buffers: sealing is on every hot path, and
// a buffer handed to the AEAD interface escapes, so a stack buffer would
// cost an allocation per call.
var adPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// ad builds the associated data: the sealed value's header, then the
// customer id and the field's coordinates, each length-prefixed so no two
// different tuples encode alike. Return the buffer with adPool.Put.
func (c *Cipher) ad(f Field) *[]byte {
	p := adPool.Get().(*[]byte)
	b := append((*p)[:0], c.adPrefix...)
	b = appendPrefixed(b, f.Collection)
	b = appendPrefixed(b, f.DocumentID)
	b = appendPrefixed(b, f.Name)
	*p = b
	return p
}

// Seal encrypts plaintext for field f with a fresh random nonce. The result
// opens only with Open of this customer's key and the same f.
func (c *Cipher) Seal(f Field, plaintext []byte) ([]byte, error) {
	n := len(c.header) + chacha20poly1305.NonceSizeX
	out := make([]byte, n, n+len(plaintext)+chacha20poly1305.Overhead)
	copy(out, c.header)
	nonce := out[len(c.header):n]
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ad := c.ad(f)
	out = c.aead.Seal(out, nonce, plaintext, *ad)
	adPool.Put(ad)
	return out, nil
}

// Open decrypts a value sealed by Seal for the same customer, key and field.
// Every failure (short or garbled input, unknown format, another key id,
// another customer or field, a flipped bit) is ErrDecrypt and nothing else.
func (c *Cipher) Open(f Field, sealed []byte) ([]byte, error) {
	h := len(c.header)
	if len(sealed) < h+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead ||
		string(sealed[:h]) != string(c.header) {
		return nil, ErrDecrypt
	}
	nonce := sealed[h : h+chacha20poly1305.NonceSizeX]
	ad := c.ad(f)
	out, err := c.aead.Open(nil, nonce, sealed[h+chacha20poly1305.NonceSizeX:], *ad)
	adPool.Put(ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// BlindIndex is a 32-byte keyed hash of a normalised value, for exact
// lookups without storing the value: HMAC-SHA256 under the customer's
// index subkey over the length-prefixed field name and the value, so equal
// values of different fields, or of different customers, differ.
func (c *Cipher) BlindIndex(name, normalized string) []byte {
	m := hmac.New(sha256.New, c.indexKey)
	var lenBuf [binary.MaxVarintLen64]byte
	m.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(name)))])
	io.WriteString(m, name)
	io.WriteString(m, normalized)
	return m.Sum(nil)
}

// String names the cipher's customer and key id only; its keys are secret.
func (c Cipher) String() string {
	return "Cipher(customer " + c.customerID + ", key " + c.keyID + ", [redacted])"
}

// GoString redacts under %#v.
func (c Cipher) GoString() string { return c.String() }

// Format redacts under every verb.
func (c Cipher) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue redacts in slog.
func (c Cipher) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Secrets redact themselves however they are printed, by value or pointer.
var (
	_ fmt.Stringer   = Cipher{}
	_ fmt.GoStringer = Cipher{}
	_ fmt.Formatter  = Cipher{}
	_ slog.LogValuer = Cipher{}
)

// OpenJSON opens a value sealed for f and decodes its JSON into a new T.
func OpenJSON[T any](c *Cipher, f Field, sealed []byte) (*T, error) {
	b, err := c.Open(f, sealed)
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
