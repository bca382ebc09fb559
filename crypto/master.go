package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"filippo.io/age"
)

// Sentinel errors of the package.
var (
	// ErrDecrypt is the one opaque error of opening anything: a tampered,
	// truncated or misplaced value, or the wrong key, all look the same.
	ErrDecrypt = errors.New("crypto: decryption failed")
	// ErrKeyNotFound means a customer has no key: never created, or destroyed.
	ErrKeyNotFound = errors.New("crypto: customer key not found")
	// ErrNoIdentity means a master key file holds no X25519 identity.
	ErrNoIdentity = errors.New("crypto: no age X25519 identity in master key file")
)

// DevMasterKeyFile is the development master key's file name in the data dir.
const DevMasterKeyFile = "dev-master.agekey"

// MasterKey is one or more age X25519 identities, newest first. Customer
// keys are wrapped to the newest one's recipient and unwrapped with any of
// them, so rotation works by putting a new identity first. A MasterKey never
// prints its secrets.
type MasterKey struct {
	identities []*age.X25519Identity
	ids        []string
}

// LoadMasterKey reads an age identity file: AGE-SECRET-KEY-1… lines, newest
// first; comments and blank lines are allowed.
func LoadMasterKey(path string) (*MasterKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	m, err := parseMasterKey(b)
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	return m, nil
}

func parseMasterKey(b []byte) (*MasterKey, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		// age's message may quote the offending line: keep it out.
		return nil, errors.New("not an age identity file")
	}
	m := &MasterKey{}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			m.identities = append(m.identities, x)
			m.ids = append(m.ids, recipientID(x.Recipient()))
		}
	}
	if len(m.identities) == 0 {
		return nil, ErrNoIdentity
	}
	return m, nil
}

// LoadOrCreateDevMasterKey loads the development master key from dir,
// generating it (mode 0600) the first time. created reports whether it was
// generated now. Only embedded mode may use it.
func LoadOrCreateDevMasterKey(dir string) (key *MasterKey, created bool, err error) {
	path := filepath.Join(dir, DevMasterKeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	// O_EXCL: of two processes starting at once, one creates, the other loads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		m, err := LoadMasterKey(path)
		return m, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	content := "# Switchboard DEVELOPMENT master key. Never use it in production.\n" +
		"# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if _, err := io.WriteString(f, content); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("development master key: %w", err)
	}
	m, err := parseMasterKey([]byte(content))
	return m, true, err
}

func recipientID(r *age.X25519Recipient) string {
	sum := sha256.Sum256([]byte(r.String()))
	return hex.EncodeToString(sum[:8])
}

// ID identifies the current (newest) identity; it is derived from its
// public recipient and safe to store and log.
func (m *MasterKey) ID() string { return m.ids[0] }

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

// unwrap decrypts with whichever identity can; any failure is ErrDecrypt.
func (m *MasterKey) unwrap(wrapped []byte) ([]byte, error) {
	ids := make([]age.Identity, len(m.identities))
	for i, id := range m.identities {
		ids[i] = id
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), ids...)
	if err != nil {
		return nil, ErrDecrypt
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return nil, ErrDecrypt
	}
	return b, nil
}

// String redacts: the identities are secret.
func (m *MasterKey) String() string {
	if m == nil {
		return "MasterKey(nil)"
	}
	return fmt.Sprintf("MasterKey(%d identities, current %s, [redacted])", len(m.ids), m.ids[0])
}

// GoString redacts under %#v.
func (m *MasterKey) GoString() string { return m.String() }

// Format redacts under every verb.
func (m *MasterKey) Format(f fmt.State, _ rune) { io.WriteString(f, m.String()) }

// LogValue redacts in slog.
func (m *MasterKey) LogValue() slog.Value { return slog.StringValue(m.String()) }

// compile-time checks that secrets redact themselves.
var (
	_ fmt.Stringer   = (*MasterKey)(nil)
	_ fmt.GoStringer = (*MasterKey)(nil)
	_ fmt.Formatter  = (*MasterKey)(nil)
	_ slog.LogValuer = (*MasterKey)(nil)
)

// WrapSecret age-encrypts a platform secret (a token signing key, say) to
// the current master recipient, bound to a label so it cannot be swapped for
// another secret's. Customer keys go through the Keyring instead.
func (m *MasterKey) WrapSecret(label string, secret []byte) ([]byte, error) {
	env := append([]byte(label+"\x00"), secret...)
	defer clear(env)
	return m.wrap(env)
}

// UnwrapSecret opens what WrapSecret wrapped under the same label, with any
// identity of the master key; every failure is ErrDecrypt.
func (m *MasterKey) UnwrapSecret(label string, wrapped []byte) ([]byte, error) {
	env, err := m.unwrap(wrapped)
	if err != nil {
		return nil, err
	}
	prefix := label + "\x00"
	if len(env) < len(prefix) || string(env[:len(prefix)]) != prefix {
		clear(env)
		return nil, ErrDecrypt
	}
	return env[len(prefix):], nil
}
