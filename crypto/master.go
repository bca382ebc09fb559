package crypto

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// Sentinel errors of the package.
var (
	// ErrDecrypt is the one opaque error of opening anything: a tampered,
	// truncated or misplaced value, or the wrong key, all look the same.
	ErrDecrypt = errors.New("crypto: decryption failed")
	// ErrKeyNotFound means a customer has no key: never created, or destroyed.
	ErrKeyNotFound = errors.New("crypto: customer key not found")
	// ErrNoIdentity means a master key file holds no age X25519 identity.
	ErrNoIdentity = errors.New("crypto: no age X25519 identity in master key file")
)

// DevMasterKeyFile is the development master key's file name in the data dir.
const DevMasterKeyFile = "dev-master.agekey"

// maxMasterKeyFile bounds what LoadMasterKey reads: an identity line is 74
// bytes, so this leaves room for thousands of epochs and their comments.
const maxMasterKeyFile = 1 << 20

// MasterKey is one or more age X25519 identities, newest first. Keys are
// wrapped to the newest one's recipient and unwrapped with any of them, so
// a rotation puts a new identity first and retires the old one once every
// key is re-wrapped. A MasterKey is immutable, safe for concurrent use, and
// never prints its secrets. Build one with LoadMasterKey or
// LoadOrCreateDevMasterKey.
type MasterKey struct {
	identities []*age.X25519Identity
	ids        []string
}

// LoadMasterKey reads an age identity file: AGE-SECRET-KEY-1… lines, newest
// first, with '#' comments and blank lines allowed. Errors name the path
// and the line, never the file's contents. A file without any identity is
// ErrNoIdentity; a line holding anything but an X25519 identity is an error
// rather than skipped, so the newest identity is always the one intended.
func LoadMasterKey(path string) (*MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err) // a PathError names the path
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMasterKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	defer clear(b)
	if len(b) > maxMasterKeyFile {
		return nil, fmt.Errorf("load master key %s: file larger than %d bytes", path, maxMasterKeyFile)
	}
	m, err := parseMasterKey(b)
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	return m, nil
}

func parseMasterKey(b []byte) (*MasterKey, error) {
	m := &MasterKey{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// age's own errors may quote the offending text: report the line
		// number only.
		if !strings.HasPrefix(line, "AGE-SECRET-KEY-1") {
			return nil, fmt.Errorf("line %d: not an age X25519 identity (AGE-SECRET-KEY-1…)", n)
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: malformed age X25519 identity", n)
		}
		m.identities = append(m.identities, id)
		m.ids = append(m.ids, recipientID(id.Recipient()))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	if len(m.identities) == 0 {
		return nil, ErrNoIdentity
	}
	return m, nil
}

// LoadOrCreateDevMasterKey loads the development master key from
// dir/dev-master.agekey, generating it with mode 0600 the first time;
// created reports whether this call generated it, so the caller can warn.
// Concurrent callers, in one process or several, all end up with the same
// key. Only embedded mode may use it.
func LoadOrCreateDevMasterKey(dir string) (key *MasterKey, created bool, err error) {
	path := filepath.Join(dir, DevMasterKeyFile)
	if m, err := LoadMasterKey(path); err == nil {
		return m, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	content := []byte("# Switchboard DEVELOPMENT master key. Never use it in production.\n" +
		"# public key: " + id.Recipient().String() + "\n" + id.String() + "\n")
	defer clear(content)

	// Write the whole file under a temporary name, then link it into place:
	// link fails if the name exists, so of two processes starting at once
	// exactly one publishes its key, and nobody ever reads a half-written
	// file.
	tmp, err := os.CreateTemp(dir, DevMasterKeyFile+".tmp-*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case errors.Is(err, fs.ErrExist):
		m, err := LoadMasterKey(path)
		if err != nil {
			return nil, false, fmt.Errorf("development master key: %w", err)
		}
		return m, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the new name durable
		d.Close()
	}
	m, err := parseMasterKey(content)
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	return m, true, nil
}

func recipientID(r *age.X25519Recipient) string {
	sum := sha256.Sum256([]byte(r.String()))
	return hex.EncodeToString(sum[:8])
}

// ID identifies the current (newest) identity: the first 8 bytes of the
// SHA-256 of its public recipient, in hex. It is stable, public, and safe
// to store and log.
func (m *MasterKey) ID() string { return m.ids[0] }

// IDs identifies every identity, newest first, as ID does the newest.
func (m *MasterKey) IDs() []string { return append([]string(nil), m.ids...) }

// DeriveKey returns a 32-byte key for one purpose (label), derived with
// HKDF-SHA256 from the current identity: every instance sharing the key
// file derives the same one, and rotating the master key rotates it too.
func (m *MasterKey) DeriveKey(label string) []byte {
	k, err := hkdf.Key(sha256.New, []byte(m.identities[0].String()), nil, "switchboard derived key: "+label, 32)
	if err != nil {
		panic("crypto: hkdf: " + err.Error()) // only for an impossible length
	}
	return k
}

// wrap encrypts plaintext to the current identity's recipient.
func (m *MasterKey) wrap(plaintext []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, m.identities[0].Recipient())
	if err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	return buf.Bytes(), nil
}

// maxWrapped bounds an unwrapped plaintext: envelopes are a few hundred
// bytes, and a larger one is not ours.
const maxWrapped = 4096

// unwrap decrypts with whichever identity can; any failure is ErrDecrypt.
// The caller owns the result and clears it.
func (m *MasterKey) unwrap(wrapped []byte) ([]byte, error) {
	ids := make([]age.Identity, len(m.identities))
	for i, id := range m.identities {
		ids[i] = id
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), ids...)
	if err != nil {
		return nil, ErrDecrypt
	}
	b, err := io.ReadAll(io.LimitReader(r, maxWrapped+1))
	if err != nil || len(b) > maxWrapped {
		clear(b)
		return nil, ErrDecrypt
	}
	return b, nil
}

// WrapSecret age-encrypts a platform secret (a token signing key, say) to
// the current master recipient, bound to a label so it cannot be swapped for
// another secret's. The label must not contain a NUL byte. Customer keys go
// through the Keyring instead.
func (m *MasterKey) WrapSecret(label string, secret []byte) ([]byte, error) {
	if strings.IndexByte(label, 0) >= 0 {
		return nil, errors.New("wrap secret: label contains NUL")
	}
	env := append([]byte(label+"\x00"), secret...)
	defer clear(env)
	return m.wrap(env)
}

// UnwrapSecret opens what WrapSecret wrapped under the same label, with any
// identity of the master key; every failure is ErrDecrypt. The caller owns
// the returned bytes.
func (m *MasterKey) UnwrapSecret(label string, wrapped []byte) ([]byte, error) {
	env, err := m.unwrap(wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(env)
	prefix := label + "\x00"
	if len(env) < len(prefix) || string(env[:len(prefix)]) != prefix {
		return nil, ErrDecrypt
	}
	return bytes.Clone(env[len(prefix):]), nil
}

// String describes the key by its public ids only; the identities are
// secret.
func (m MasterKey) String() string {
	if len(m.ids) == 0 {
		return "MasterKey(empty)"
	}
	return fmt.Sprintf("MasterKey(%d identities, current %s, [redacted])", len(m.ids), m.ids[0])
}

// GoString redacts under %#v.
func (m MasterKey) GoString() string { return m.String() }

// Format redacts under every verb.
func (m MasterKey) Format(f fmt.State, _ rune) { io.WriteString(f, m.String()) }

// LogValue redacts in slog.
func (m MasterKey) LogValue() slog.Value { return slog.StringValue(m.String()) }

// Secrets redact themselves however they are printed, by value or pointer.
var (
	_ fmt.Stringer   = MasterKey{}
	_ fmt.GoStringer = MasterKey{}
	_ fmt.Formatter  = MasterKey{}
	_ slog.LogValuer = MasterKey{}
)
