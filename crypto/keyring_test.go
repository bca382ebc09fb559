package crypto_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

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

const custA, custB = "0193a0c4-aaaa-7000-8000-00000000000a", "0193a0c4-bbbb-7000-8000-00000000000b"

func TestKeyringCreateCipherDestroy(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	coll := db.Keys.Collection("customer_keys")
	kr := crypto.NewKeyring(coll, mustMaster(t, newIdentity(t)))
	defer kr.Close()

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
	sealed, _ := c.Seal(field, []byte("kept"))
	// A second Create keeps the first key.
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("%d key documents after two creates", n)
	}
	if got, err := c.Open(field, sealed); err != nil || string(got) != "kept" {
		t.Fatalf("open after second create: %v", err)
	}

	// The stored document holds no raw key material of the cipher.
	var raw bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: custA}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"_id", "keyId", "masterKeyId", "wrapped", "createdAt"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("key document lacks %s: %v", k, raw)
		}
	}

	// Destroy: gone even though it was cached.
	if err := kr.Destroy(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher after destroy: %v", err)
	}
	if err := kr.Destroy(ctx, custA); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
}

func TestKeyringCacheForgets(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	coll := db.Keys.Collection("customer_keys")
	clk := fakeclock.New(time.Now())
	kr := crypto.NewKeyring(coll, mustMaster(t, newIdentity(t)), crypto.WithClock(clk.Now), crypto.WithCacheTTL(10*time.Second))
	defer kr.Close()
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custA); err != nil {
		t.Fatal(err)
	}
	// Delete the document behind the keyring's back: the cache still serves it...
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: custA}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custA); err != nil {
		t.Fatalf("cached cipher within TTL: %v", err)
	}
	// ...but not past its TTL.
	clk.Add(11 * time.Second)
	if _, err := kr.Cipher(ctx, custA); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("cipher past TTL: %v", err)
	}
}

func TestWrappedKeyMovedToAnotherCustomerFails(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	coll := db.Keys.Collection("customer_keys")
	kr := crypto.NewKeyring(coll, mustMaster(t, newIdentity(t)))
	defer kr.Close()
	if err := kr.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	var doc bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: custA}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	doc["_id"] = custB
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Cipher(ctx, custB); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("a key wrapped for A opened as B's: %v", err)
	}
}

func TestMasterKeyRotation(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	coll := db.Keys.Collection("customer_keys")
	oldID, newID := newIdentity(t), newIdentity(t)

	before := crypto.NewKeyring(coll, mustMaster(t, oldID))
	if err := before.Create(ctx, custA); err != nil {
		t.Fatal(err)
	}
	c, _ := before.Cipher(ctx, custA)
	sealed, _ := c.Seal(field, []byte("survives rotation"))
	before.Close()

	// New identity first, old one after: the old key still opens.
	rotated := mustMaster(t, newID, oldID)
	kr := crypto.NewKeyring(coll, rotated)
	defer kr.Close()
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

	n, err := kr.Rewrap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("rewrap moved %d keys (%v), want 1", n, err)
	}
	if n, _ := kr.Rewrap(ctx); n != 0 {
		t.Fatalf("second rewrap moved %d keys", n)
	}
	// The old identity retired: only the new one is needed now.
	onlyNew := crypto.NewKeyring(coll, mustMaster(t, newID))
	defer onlyNew.Close()
	c, err = onlyNew.Cipher(ctx, custA)
	if err != nil {
		t.Fatalf("after rewrap, with the new identity only: %v", err)
	}
	if got, err := c.Open(field, sealed); err != nil || string(got) != "survives rotation" {
		t.Fatalf("open after rewrap: %v", err)
	}
	// And the retired identity alone opens nothing any more.
	onlyOld := crypto.NewKeyring(coll, mustMaster(t, oldID))
	defer onlyOld.Close()
	if _, err := onlyOld.Cipher(ctx, custA); !errors.Is(err, crypto.ErrDecrypt) {
		t.Fatalf("retired identity still opens the key: %v", err)
	}
}

func TestDevMasterKey(t *testing.T) {
	dir := t.TempDir()
	m1, created, err := crypto.LoadOrCreateDevMasterKey(dir)
	if err != nil || !created {
		t.Fatalf("first: created=%v %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, crypto.DevMasterKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	m2, created, err := crypto.LoadOrCreateDevMasterKey(dir)
	if err != nil || created || m2.ID() != m1.ID() {
		t.Fatalf("second: created=%v id %s vs %s, %v", created, m2.ID(), m1.ID(), err)
	}
}

func TestLoadMasterKeyErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	if _, err := crypto.LoadMasterKey(bad); err == nil || bytes.Contains([]byte(err.Error()), []byte("NOTAKEY")) {
		t.Fatalf("bad file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	if _, err := crypto.LoadMasterKey(empty); err == nil {
		t.Fatal("empty identity file accepted")
	}
	if _, err := crypto.LoadMasterKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}
