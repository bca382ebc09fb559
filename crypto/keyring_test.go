package crypto_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func identityFile(t *testing.T, ids ...*age.X25519Identity) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# test master key, newest first\n\n")
	for _, id := range ids {
		b.WriteString(id.String() + "\n")
	}
	path := filepath.Join(t.TempDir(), "master.agekey")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustMaster(t *testing.T, ids ...*age.X25519Identity) *crypto.MasterKey {
	t.Helper()
	m, err := crypto.LoadMasterKey(identityFile(t, ids...))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keysColl(t *testing.T) *mongo.Collection {
	t.Helper()
	return storetest.MustOpen(t).Keys.Collection("customer_keys")
}

func newKeyring(t *testing.T, coll *mongo.Collection, m *crypto.MasterKey, opts ...crypto.KeyringOption) *crypto.Keyring {
	t.Helper()
	kr := crypto.NewKeyring(coll, m, opts...)
	t.Cleanup(kr.Close)
	return kr
}

func keyDoc(t *testing.T, coll *mongo.Collection, customerID string) bson.M {
	t.Helper()
	var doc bson.M
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: customerID}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

const custA, custB = "0193a0c4-aaaa-7000-8000-00000000000a", "0193a0c4-bbbb-7000-8000-00000000000b"

func TestKeyringCreateCipherDestroy(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	master := mustMaster(t, newIdentity(t))
	kr := newKeyring(t, coll, master)

	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher before create: %v", err)
	}
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	c, err := kr.Cipher(ctx, custA)
	if err != nil {
		t.Fatal(err)
	}
	if c.CustomerID() != custA {
		t.Fatalf("cipher of %s for %s", c.CustomerID(), custA)
	}
	sealed, _ := c.Seal(field, []byte("kept"))

	// A cold keyring unwraps the same key from the stored document.
	cold := newKeyring(t, coll, master)
	c2, err := cold.Cipher(ctx, custA)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c2.Open(field, sealed); err != nil || string(got) != "kept" {
		t.Fatalf("open with the unwrapped key: %q %v", got, err)
	}

	// Destroy: gone although it was cached.
	if kr.CachedLen() != 1 {
		t.Fatalf("%d cached keys before destroy, want 1", kr.CachedLen())
	}
	if err := kr.Destroy(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if kr.CachedLen() != 0 {
		t.Fatalf("%d cached keys after destroy", kr.CachedLen())
	}
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher after destroy: %v", err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("%d key documents after destroy", n)
	}
	if err := kr.Destroy(ctx, custA); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if err := kr.Destroy(ctx, custB); err != nil {
		t.Fatalf("destroy of a key never created: %v", err)
	}
}

func TestKeyringCreateTwiceKeepsTheKey(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	master := mustMaster(t, newIdentity(t))
	kr := newKeyring(t, coll, master)
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	first := keyDoc(t, coll, custA)
	c, _ := kr.Cipher(ctx, custA)
	sealed, _ := c.Seal(field, []byte("kept"))

	// The retry comes from another process: nothing cached there.
	retry := newKeyring(t, coll, master)
	if err := retry.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("%d key documents after two creates", n)
	}
	if second := keyDoc(t, coll, custA); second["keyId"] != first["keyId"] ||
		!bytes.Equal(second["wrapped"].(bson.Binary).Data, first["wrapped"].(bson.Binary).Data) {
		t.Fatal("the second create replaced the key document")
	}
	c2, err := retry.Cipher(ctx, custA)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c2.Open(field, sealed); err != nil || string(got) != "kept" {
		t.Fatalf("open after second create: %q %v", got, err)
	}
}

func TestKeyDocumentHoldsNoRawKey(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	master := mustMaster(t, newIdentity(t))
	now := time.Date(2025, 3, 4, 5, 6, 7, 8_000_000, time.UTC)
	kr := newKeyring(t, coll, master, crypto.WithClock(func() time.Time { return now }))
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	var raw bson.Raw
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: custA}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	doc := keyDoc(t, coll, custA)
	if len(doc) != 5 {
		t.Fatalf("key document has fields %v, want _id keyId masterKeyId wrapped createdAt", doc)
	}
	keyID, _ := doc["keyId"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(keyID) {
		t.Fatalf("keyId %q, want 16 hex characters", keyID)
	}
	if doc["masterKeyId"] != master.ID() {
		t.Fatalf("masterKeyId %v, want %s", doc["masterKeyId"], master.ID())
	}
	if got := doc["createdAt"].(bson.DateTime).Time().UTC(); !got.Equal(now.Truncate(time.Millisecond)) {
		t.Fatalf("createdAt %v, want %v", got, now)
	}
	wrapped := doc["wrapped"].(bson.Binary).Data
	if !bytes.HasPrefix(wrapped, []byte("age-encryption.org/v1\n")) {
		t.Fatal("wrapped key is not an age file")
	}
	key, err := crypto.UnwrapKey(master, wrapped, custA, keyID)
	if err != nil || len(key) != crypto.KeySize {
		t.Fatalf("unwrap stored key: %d bytes, %v", len(key), err)
	}
	if bytes.Contains(raw, key) || bytes.Contains(raw, key[:8]) || bytes.Contains(raw, key[24:]) {
		t.Fatal("the key document contains raw key bytes")
	}
	if bytes.Count(raw, []byte(custA)) != 1 {
		t.Fatal("the envelope's customer id is visible outside _id")
	}
	// The key the document holds is the key the keyring seals with.
	c, err := kr.Cipher(ctx, custA)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := c.Seal(field, []byte("v"))
	direct, _ := crypto.NewCipher(custA, keyID, key)
	if got, err := direct.Open(field, sealed); err != nil || string(got) != "v" {
		t.Fatalf("the stored key does not open the keyring's value: %v", err)
	}
}

func TestKeyringCacheForgets(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	clk := fakeclock.New(time.Now())
	kr := newKeyring(t, coll, mustMaster(t, newIdentity(t)), crypto.WithClock(clk.Now), crypto.WithCacheTTL(10*time.Second))
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	// Delete the document behind the keyring's back: the cache still serves it...
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: custA}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(9 * time.Second)
	if _, err := kr.Cipher(ctx, custA); err != nil {
		t.Fatalf("cached cipher within TTL: %v", err)
	}
	// ...but not once its TTL is over.
	clk.Add(time.Second)
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher past TTL: %v", err)
	}
	if kr.CachedLen() != 0 {
		t.Fatalf("%d cached keys past TTL", kr.CachedLen())
	}

	// An idle entry is swept without anyone asking for it.
	if err := kr.Create(ctx, custB); err != nil {
		t.Fatal(err)
	}
	clk.Add(9 * time.Second)
	kr.Sweep()
	if kr.CachedLen() != 1 {
		t.Fatalf("%d cached keys within TTL after a sweep, want 1", kr.CachedLen())
	}
	clk.Add(time.Second)
	kr.Sweep()
	if kr.CachedLen() != 0 {
		t.Fatalf("%d cached keys past TTL after a sweep", kr.CachedLen())
	}
}

func TestKeyringSweeperRuns(t *testing.T) {
	ctx := t.Context()
	kr := newKeyring(t, keysColl(t), mustMaster(t, newIdentity(t)), crypto.WithCacheTTL(40*time.Millisecond))
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if kr.CachedLen() != 1 {
		t.Fatalf("%d cached keys after create, want 1", kr.CachedLen())
	}
	deadline := time.Now().Add(5 * time.Second)
	for kr.CachedLen() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never dropped the idle key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	kr.Close()
	kr.Close() // idempotent
}

func TestKeyringWithoutCache(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	kr := newKeyring(t, coll, mustMaster(t, newIdentity(t)), crypto.WithCacheTTL(0))
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if kr.CachedLen() != 0 {
		t.Fatalf("%d cached keys with the cache off", kr.CachedLen())
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: custA}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher with the cache off after delete: %v", err)
	}
}

func TestKeyringDestroyDuringLoad(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	master := mustMaster(t, newIdentity(t))
	if err := newKeyring(t, coll, master).Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	// A load reads the key document, then Destroy runs to completion before
	// the load caches what it read.
	kr := newKeyring(t, coll, master)
	loaded, resume := make(chan struct{}), make(chan struct{})
	crypto.SetLoadHook(kr, func() { close(loaded); <-resume })
	got := make(chan error, 1)
	go func() {
		_, err := kr.Cipher(ctx, custA)
		got <- err
	}()
	<-loaded
	crypto.SetLoadHook(kr, nil)
	if err := kr.Destroy(ctx, custA); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-got; err != nil {
		t.Fatalf("the load that read the key before the delete: %v", err)
	}
	if kr.CachedLen() != 0 {
		t.Fatal("a load that began before Destroy cached the destroyed key")
	}
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher after destroy: %v", err)
	}
}

func TestWrappedKeyMovedToAnotherCustomerFails(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	master := mustMaster(t, newIdentity(t))
	kr := newKeyring(t, coll, master)
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	doc := keyDoc(t, coll, custA)
	doc["_id"] = custB
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custB); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("a key wrapped for A opened as B's: %v", err)
	}

	// Same customer, another key id: refused as well.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: custA}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "keyId", Value: "0000000000000000"}}}}); err != nil {
		t.Fatal(err)
	}
	cold := newKeyring(t, coll, master)
	if _, err := cold.Cipher(ctx, custA); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("a key under another key id accepted: %v", err)
	}

	// Anyone can wrap to the public recipient: a key wrapped by an attacker
	// for customer A and planted under B's _id is refused too.
	planted, err := crypto.WrapKey(master, custA, "1111111111111111", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: custB}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "keyId", Value: "1111111111111111"}, {Key: "wrapped", Value: planted}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cold.Cipher(ctx, custB); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("a planted key accepted: %v", err)
	}
}

func TestMasterKeyRotation(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	oldID, newID := newIdentity(t), newIdentity(t)
	oldMaster := mustMaster(t, oldID)

	before := newKeyring(t, coll, oldMaster)
	if err := before.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	c, _ := before.Cipher(ctx, custA)
	sealed, _ := c.Seal(field, []byte("survives rotation"))
	before.Close()

	// New identity first, old one after: the old key still opens.
	rotated := mustMaster(t, newID, oldID)
	if ids := rotated.IDs(); len(ids) != 2 || ids[0] != rotated.ID() || ids[1] != oldMaster.ID() || ids[0] == ids[1] {
		t.Fatalf("rotated ids %v, want [new %s]", ids, oldMaster.ID())
	}
	kr := newKeyring(t, coll, rotated)
	c, err := kr.Cipher(ctx, custA)
	if err != nil {
		t.Fatalf("key wrapped under the older identity: %v", err)
	}
	if got, err := c.Open(field, sealed); err != nil || string(got) != "survives rotation" {
		t.Fatalf("open after rotation: %v", err)
	}
	if err := kr.Create(ctx, custB); err != nil {
		t.Fatal(err)
	}
	if got := keyDoc(t, coll, custB)["masterKeyId"]; got != rotated.ID() {
		t.Fatalf("new key wrapped under %v, want the newest identity %s", got, rotated.ID())
	}
	keyIDBefore := keyDoc(t, coll, custA)["keyId"]

	n, err := kr.Rewrap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("rewrap moved %d keys (%v), want 1", n, err)
	}
	if doc := keyDoc(t, coll, custA); doc["masterKeyId"] != rotated.ID() || doc["keyId"] != keyIDBefore {
		t.Fatalf("after rewrap: masterKeyId %v keyId %v, want %s %v", doc["masterKeyId"], doc["keyId"], rotated.ID(), keyIDBefore)
	}
	if n, err := kr.Rewrap(ctx); n != 0 || err != nil {
		t.Fatalf("second rewrap moved %d keys (%v)", n, err)
	}
	// The old identity retired: only the new one is needed now.
	onlyNew := newKeyring(t, coll, mustMaster(t, newID))
	c, err = onlyNew.Cipher(ctx, custA)
	if err != nil {
		t.Fatalf("after rewrap, with the new identity only: %v", err)
	}
	if got, err := c.Open(field, sealed); err != nil || string(got) != "survives rotation" {
		t.Fatalf("open after rewrap: %v", err)
	}
	// And the retired identity alone opens nothing any more.
	onlyOld := newKeyring(t, coll, oldMaster)
	if _, err := onlyOld.Cipher(ctx, custA); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("retired identity still opens the key: %v", err)
	}
}

func TestRewrapSkipsBrokenKeys(t *testing.T) {
	ctx := t.Context()
	coll := keysColl(t)
	oldID, newID := newIdentity(t), newIdentity(t)
	before := newKeyring(t, coll, mustMaster(t, oldID))
	for _, id := range []string{custA, custB} {
		if err := before.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// B's document now holds A's wrapped key: it must not be blessed.
	a := keyDoc(t, coll, custA)
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: custB}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "keyId", Value: a["keyId"]}, {Key: "wrapped", Value: a["wrapped"]}}}}); err != nil {
		t.Fatal(err)
	}
	rotated := mustMaster(t, newID, oldID)
	kr := newKeyring(t, coll, rotated)
	n, err := kr.Rewrap(ctx)
	if n != 1 || !errors.Is(err, crypto.ErrDecrypt) || !strings.Contains(err.Error(), custB) {
		t.Fatalf("rewrap with one broken key: moved %d, %v", n, err)
	}
	if got := keyDoc(t, coll, custA)["masterKeyId"]; got != rotated.ID() {
		t.Fatalf("the sound key stayed under %v", got)
	}
	if got := keyDoc(t, coll, custB)["masterKeyId"]; got == rotated.ID() {
		t.Fatal("the broken key was re-wrapped under the new identity")
	}
}

func TestWrapSecret(t *testing.T) {
	oldID, newID := newIdentity(t), newIdentity(t)
	wrapped, err := mustMaster(t, oldID).WrapSecret("signing key k1", []byte("seed bytes"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustMaster(t, newID, oldID)
	if got, err := rotated.UnwrapSecret("signing key k1", wrapped); err != nil || string(got) != "seed bytes" {
		t.Fatalf("unwrap: %q %v", got, err)
	}
	for name, tc := range map[string]struct {
		m       *crypto.MasterKey
		label   string
		wrapped []byte
	}{
		"other label":     {rotated, "signing key k2", wrapped},
		"label prefix":    {rotated, "signing key", wrapped},
		"other identity":  {mustMaster(t, newID), "signing key k1", wrapped},
		"garbage":         {rotated, "signing key k1", []byte("age-encryption.org/v1\n-> X25519 x\n")},
		"truncated":       {rotated, "signing key k1", wrapped[:len(wrapped)-1]},
		"empty":           {rotated, "signing key k1", nil},
		"flipped payload": {rotated, "signing key k1", append(bytes.Clone(wrapped[:len(wrapped)-1]), wrapped[len(wrapped)-1]^1)},
	} {
		if got, err := tc.m.UnwrapSecret(tc.label, tc.wrapped); err != crypto.ErrDecrypt || got != nil {
			t.Errorf("%s: %q %v, want ErrDecrypt", name, got, err)
		}
	}
	if _, err := rotated.WrapSecret("a\x00b", []byte("x")); err == nil {
		t.Fatal("label with NUL accepted")
	}
}

func TestDevMasterKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	m1, created, err := crypto.LoadOrCreateDevMasterKey(dir)
	if err != nil || !created {
		t.Fatalf("first: created=%v %v", created, err)
	}
	path := filepath.Join(dir, crypto.DevMasterKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	content, _ := os.ReadFile(path)
	if !bytes.Contains(content, []byte("DEVELOPMENT")) || bytes.Count(content, []byte("AGE-SECRET-KEY-1")) != 1 {
		t.Fatalf("dev key file holds %d identities", bytes.Count(content, []byte("AGE-SECRET-KEY-1")))
	}
	m2, created, err := crypto.LoadOrCreateDevMasterKey(dir)
	if err != nil || created || m2.ID() != m1.ID() {
		t.Fatalf("second: created=%v id %s vs %s, %v", created, m2.ID(), m1.ID(), err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, content) {
		t.Fatal("loading the dev key rewrote its file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data dir holds %d files, want only the key", len(entries))
	}
	// What one wraps, the other unwraps: it is the same identity.
	w, _ := m1.WrapSecret("l", []byte("s"))
	if got, err := m2.UnwrapSecret("l", w); err != nil || string(got) != "s" {
		t.Fatalf("reloaded dev key does not unwrap: %v", err)
	}
}

func TestDevMasterKeyConcurrentStart(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	var (
		wg      sync.WaitGroup
		ids     [n]string
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() {
			var m *crypto.MasterKey
			m, created[i], errs[i] = crypto.LoadOrCreateDevMasterKey(dir)
			if m != nil {
				ids[i] = m.ID()
			}
		})
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("caller %d got key %s, caller 0 %s", i, ids[i], ids[0])
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers created the key, want 1", creators)
	}
}

func TestLoadMasterKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := newIdentity(t), newIdentity(t)
	m, err := crypto.LoadMasterKey(write("ok", "# created 2025\r\n\n  "+a.String()+"  \r\n# older epoch\n"+b.String()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{mustMaster(t, a).ID(), mustMaster(t, b).ID()}
	if ids := m.IDs(); len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] || m.ID() != want[0] {
		t.Fatalf("ids %v, want %v newest first", ids, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(m.ID()) {
		t.Fatalf("id %q, want 16 hex characters", m.ID())
	}

	secret := b.String()
	for name, tc := range map[string]struct {
		content string
		is      error
		says    string
	}{
		"empty":            {"", crypto.ErrNoIdentity, ""},
		"comments only":    {"# nothing\n\n", crypto.ErrNoIdentity, ""},
		"malformed":        {a.String() + "\n" + secret[:len(secret)-3] + "QQQ\n", nil, "line 2: malformed"},
		"not an identity":  {"# x\n" + strings.ToLower(secret) + "\n", nil, "line 2: not an age X25519 identity"},
		"public key":       {b.Recipient().String() + "\n", nil, "line 1: not an age X25519 identity"},
		"post-quantum":     {"AGE-SECRET-KEY-PQ-1" + secret[len("AGE-SECRET-KEY-1"):] + "\n", nil, "line 1: not an age X25519 identity"},
		"secret mid-line":  {"key: " + secret + "\n", nil, "line 1: not an age X25519 identity"},
		"garbage binary":   {"\x00\x01\x02" + secret, nil, "line 1"},
		"too long for age": {strings.Repeat("#", 2<<20), nil, "larger than"},
	} {
		path := write(name, tc.content)
		m, err := crypto.LoadMasterKey(path)
		if err == nil || m != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want %v", name, err, tc.is)
		}
		if !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %q does not say %q and name the file", name, err, tc.says)
		}
		if strings.Contains(strings.ToUpper(err.Error()), secret[len("AGE-SECRET-KEY-1"):len("AGE-SECRET-KEY-1")+12]) {
			t.Errorf("%s: error quotes the secret: %v", name, err)
		}
	}
	missing := filepath.Join(dir, "missing")
	if _, err := crypto.LoadMasterKey(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

// zeroKeyIndex is the blind index a cipher whose index subkey was cleared
// computes: HMAC-SHA256, the way BlindIndex builds it, under 32 zero bytes.
func zeroKeyIndex(name, normalized string) []byte {
	m := hmac.New(sha256.New, make([]byte, 32))
	m.Write(binary.AppendUvarint(nil, uint64(len(name))))
	m.Write([]byte(name))
	m.Write([]byte(normalized))
	return m.Sum(nil)
}

// A request keeps using the Cipher it was handed after the keyring let go of
// it: expiry (by the sweeper or by a refresh in Cipher), destroying another
// customer and closing the keyring must never clear its keys, or it would
// compute blind indexes under zero bytes that match nothing stored.
func TestKeyringHeldCipherSurvivesExpiry(t *testing.T) {
	const name, value = "email", "a@b.c"
	// Each way of evicting the entry the held cipher came from; the other
	// way runs next, on the cipher loaded in its place.
	for _, path := range []string{"sweep", "refresh"} {
		t.Run(path, func(t *testing.T) {
			ctx := t.Context()
			clk := fakeclock.New(time.Now())
			// A long TTL: the background sweeper (every TTL/4 of real time)
			// stays out of the way, so each path below is the one evicting.
			const ttl = 40 * time.Second
			kr := newKeyring(t, keysColl(t), mustMaster(t, newIdentity(t)), crypto.WithClock(clk.Now), crypto.WithCacheTTL(ttl))
			if err := kr.Create(ctx, custA); err != nil {
				t.Fatal(err)
			}
			held, err := kr.Cipher(ctx, custA)
			if err != nil {
				t.Fatal(err)
			}
			if kr.CachedLen() != 1 {
				t.Fatalf("%d cached keys, want the held cipher's entry", kr.CachedLen())
			}
			want := held.BlindIndex(name, value)
			sealedBefore, err := held.Seal(field, []byte("sealed before expiry"))
			if err != nil {
				t.Fatal(err)
			}
			// What the old defect made a held cipher compute, and what a
			// cipher of an all-zero customer key computes: neither is it.
			zeroed := zeroKeyIndex(name, value)
			zeroCipher, err := crypto.NewCipher(custA, held.KeyID(), make([]byte, crypto.KeySize))
			if err != nil {
				t.Fatal(err)
			}
			zeroKey := zeroCipher.BlindIndex(name, value)
			if bytes.Equal(want, zeroed) || bytes.Equal(want, zeroKey) || len(want) != 32 {
				t.Fatalf("blind index %x is a zero key's", want)
			}

			handed := []*crypto.Cipher{held} // every cipher handed out so far
			var fresh *crypto.Cipher         // the newest, loaded after an expiry
			load := func() {
				t.Helper()
				c, err := kr.Cipher(ctx, custA)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range handed {
					if c == h {
						t.Fatal("past its TTL the keyring handed out a cached cipher again")
					}
				}
				handed = append(handed, c)
				fresh = c
			}
			check := func(stage string) {
				t.Helper()
				// The key bytes of a cipher are cleared once it is
				// unreachable: never while someone holds it.
				runtime.GC()
				runtime.GC()
				for i, c := range handed {
					got := c.BlindIndex(name, value)
					switch {
					case bytes.Equal(got, zeroed):
						t.Fatalf("%s: cipher %d computes the blind index under 32 zero bytes: %x", stage, i, got)
					case bytes.Equal(got, zeroKey):
						t.Fatalf("%s: cipher %d computes the blind index of an all-zero key: %x", stage, i, got)
					case !bytes.Equal(got, want):
						t.Fatalf("%s: cipher %d blind index %x, want %x", stage, i, got, want)
					}
					if pt, err := c.Open(field, sealedBefore); err != nil || string(pt) != "sealed before expiry" {
						t.Fatalf("%s: cipher %d opens the value sealed before expiry: %q %v", stage, i, pt, err)
					}
				}
				sealed, err := held.Seal(field, []byte(stage))
				if err != nil {
					t.Fatal(err)
				}
				if pt, err := fresh.Open(field, sealed); err != nil || string(pt) != stage {
					t.Fatalf("%s: a freshly loaded cipher opens what the held one sealed: %q %v", stage, pt, err)
				}
			}

			clk.Add(ttl)
			switch path {
			case "sweep":
				kr.Sweep()
				if kr.CachedLen() != 0 {
					t.Fatalf("%d cached keys after a sweep past TTL", kr.CachedLen())
				}
				load()
			case "refresh":
				load() // finds the held cipher's entry expired, drops it and reloads
			}
			check("after " + path)

			clk.Add(ttl)
			switch path {
			case "sweep":
				load()
			case "refresh":
				kr.Sweep()
				if kr.CachedLen() != 0 {
					t.Fatalf("%d cached keys after a sweep past TTL", kr.CachedLen())
				}
				load()
			}
			check("after the other expiry path")

			if err := kr.Create(ctx, custB); err != nil {
				t.Fatal(err)
			}
			if _, err := kr.Cipher(ctx, custB); err != nil {
				t.Fatal(err)
			}
			if err := kr.Destroy(ctx, custB); err != nil {
				t.Fatal(err)
			}
			check("after destroying another customer")

			kr.Close() // forgets the freshest cipher, cached when it closes
			check("after close")
		})
	}
}

// Requests hold ciphers and use them while entries expire and are dropped
// under them, by the sweeper and by refreshes. Every blind index stays the
// customer's. Within a request nothing orders its reads of the cipher's key
// after what the keyring does meanwhile, so under -race an instrumented
// write to a handed-out cipher's key is a reported race as well.
func TestKeyringConcurrentUseAcrossExpiry(t *testing.T) {
	ctx := t.Context()
	clk := fakeclock.New(time.Now())
	const ttl = 40 * time.Second
	kr := newKeyring(t, keysColl(t), mustMaster(t, newIdentity(t)), crypto.WithClock(clk.Now), crypto.WithCacheTTL(ttl))
	customers := []string{custA, custB}
	want := map[string][]byte{}
	for _, id := range customers {
		if err := kr.Create(ctx, id); err != nil {
			t.Fatal(err)
		}
		c, err := kr.Cipher(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = c.BlindIndex("email", "a@b.c")
	}
	if bytes.Equal(want[custA], want[custB]) || bytes.Equal(want[custA], zeroKeyIndex("email", "a@b.c")) {
		t.Fatal("customers' blind indexes collide, or are a zero key's")
	}

	// Even workers are one long request: they take a cipher before the
	// first expiry and use it to the end. Odd workers run short requests
	// back to back, each taking the keyring's current cipher (cached, or
	// reloaded past its TTL) and using it, with the long one, a while.
	const workers, rounds, perRequest = 8, 16, 20
	var (
		wg               sync.WaitGroup
		ready            sync.WaitGroup
		done             = make(chan struct{})
		checks, requests [workers]int
	)
	ready.Add(workers)
	for w := range workers {
		id, short := customers[w/2%len(customers)], w%2 == 1
		wg.Go(func() {
			held, err := kr.Cipher(ctx, id)
			ready.Done()
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
				return
			}
			cur := held
			use := func(i int) bool {
				if short && i%perRequest == 0 {
					if cur, err = kr.Cipher(ctx, id); err != nil {
						t.Errorf("worker %d: %v", w, err)
						return false
					}
					requests[w]++
				}
				for _, c := range []*crypto.Cipher{held, cur} {
					if got := c.BlindIndex("email", "a@b.c"); !bytes.Equal(got, want[id]) {
						t.Errorf("worker %d, iteration %d: blind index %x, want %x", w, i, got, want[id])
						return false
					}
				}
				v := fmt.Sprintf("worker %d value %d", w, i)
				if !bytes.Equal(held.BlindIndex("phone", v), cur.BlindIndex("phone", v)) {
					t.Errorf("worker %d, iteration %d: the held and the current cipher index %q apart", w, i, v)
					return false
				}
				for _, pair := range [][2]*crypto.Cipher{{held, cur}, {cur, held}} {
					sealed, err := pair[0].Seal(field, []byte(v))
					if err != nil {
						t.Errorf("worker %d: seal: %v", w, err)
						return false
					}
					if pt, err := pair[1].Open(field, sealed); err != nil || string(pt) != v {
						t.Errorf("worker %d, iteration %d: open: %q %v", w, i, pt, err)
						return false
					}
				}
				checks[w]++
				return true
			}
			for i := 0; ; i++ {
				select {
				case <-done:
					use(0) // once more after the last expiry, with a new cipher
					return
				default:
				}
				if !use(i) {
					return
				}
			}
		})
	}

	ready.Wait() // every worker holds a cipher before the first expiry
	wg.Go(func() {
		defer close(done)
		// The advancer holds a cipher of each customer across each round too.
		prev := map[string]*crypto.Cipher{}
		for _, id := range customers {
			prev[id], _ = kr.Cipher(ctx, id)
		}
		for r := range rounds {
			clk.Add(ttl)
			// Both paths each round, on alternate customers: a refresh in
			// Cipher drops one's expired entry, the sweep the other's.
			refreshed, swept := customers[r%2], customers[1-r%2]
			loaded := map[string]*crypto.Cipher{}
			var err error
			if loaded[refreshed], err = kr.Cipher(ctx, refreshed); err != nil {
				t.Errorf("round %d: %v", r, err)
				return
			}
			kr.Sweep()
			if loaded[swept], err = kr.Cipher(ctx, swept); err != nil {
				t.Errorf("round %d: %v", r, err)
				return
			}
			for _, id := range customers {
				if loaded[id] == prev[id] {
					t.Errorf("round %d: %s's cipher outlived its TTL", r, id)
				}
				if got := prev[id].BlindIndex("email", "a@b.c"); !bytes.Equal(got, want[id]) {
					t.Errorf("round %d: %s's cipher held across expiry: blind index %x, want %x", r, id, got, want[id])
					return
				}
				prev[id] = loaded[id]
			}
			runtime.Gosched()
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range workers {
		if checks[w] < 2 || (w%2 == 1 && requests[w] < 2) {
			t.Errorf("worker %d ran %d checks in %d requests: no overlap with the expiries", w, checks[w], requests[w])
		}
	}
}
