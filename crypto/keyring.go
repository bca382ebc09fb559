package crypto

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// MaxCacheTTL bounds how long an unwrapped key may stay in memory.
const MaxCacheTTL = 60 * time.Second

// keyDoc is a customer key as stored: only ever age-wrapped.
type keyDoc struct {
	ID          string    `bson:"_id"`
	KeyID       string    `bson:"keyId"`
	MasterKeyID string    `bson:"masterKeyId"`
	Wrapped     []byte    `bson:"wrapped"`
	CreatedAt   time.Time `bson:"createdAt"`
}

// The wrapped plaintext is an envelope: version, customer id, key id, key.
// age proves nothing about who wrapped a key (the recipient is public), so
// unwrapping checks that the envelope names the document's customer and key.
const envelopeV1 byte = 1

func sealEnvelope(customerID, keyID string, key []byte) []byte {
	b := []byte{envelopeV1, byte(len(customerID))}
	b = append(b, customerID...)
	b = append(b, byte(len(keyID)))
	b = append(b, keyID...)
	return append(b, key...)
}

func openEnvelope(b []byte, customerID, keyID string) ([]byte, error) {
	want := sealEnvelope(customerID, keyID, nil)
	if len(b) != len(want)+KeySize || string(b[:len(want)]) != string(want) {
		return nil, ErrDecrypt
	}
	return b[len(want):], nil
}

// Keyring keeps one key per customer in the customer_keys collection,
// wrapped under the master key, and caches unwrapped keys (as ciphers) for
// at most the cache TTL. It implements tenants.Keyring.
type Keyring struct {
	coll   *mongo.Collection
	master *MasterKey
	now    func() time.Time
	ttl    time.Duration

	mu    sync.Mutex
	cache map[string]cacheEntry
	stop  chan struct{}
	once  sync.Once
}

type cacheEntry struct {
	cipher  *Cipher
	expires time.Time
}

// KeyringOption configures a Keyring.
type KeyringOption func(*Keyring)

// WithClock sets the keyring's clock (tests).
func WithClock(now func() time.Time) KeyringOption { return func(k *Keyring) { k.now = now } }

// WithCacheTTL sets how long an unwrapped key is kept, at most MaxCacheTTL.
func WithCacheTTL(d time.Duration) KeyringOption {
	return func(k *Keyring) { k.ttl = min(d, MaxCacheTTL) }
}

// NewKeyring returns a keyring over coll. Close stops its cache sweeper.
func NewKeyring(coll *mongo.Collection, master *MasterKey, opts ...KeyringOption) *Keyring {
	k := &Keyring{coll: coll, master: master, now: time.Now, ttl: 30 * time.Second,
		cache: map[string]cacheEntry{}, stop: make(chan struct{})}
	for _, o := range opts {
		o(k)
	}
	go k.sweep()
	return k
}

// sweep drops expired entries even when nobody asks for them again.
func (k *Keyring) sweep() {
	t := time.NewTicker(k.ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			k.mu.Lock()
			now := k.now()
			for id, e := range k.cache {
				if !now.Before(e.expires) {
					e.cipher.destroy()
					delete(k.cache, id)
				}
			}
			k.mu.Unlock()
		}
	}
}

// Close stops the sweeper and forgets every cached key.
func (k *Keyring) Close() {
	k.once.Do(func() {
		close(k.stop)
		k.mu.Lock()
		defer k.mu.Unlock()
		for id, e := range k.cache {
			e.cipher.destroy()
			delete(k.cache, id)
		}
	})
}

// Create makes the customer's key: 32 random bytes, wrapped to the current
// master recipient. If the customer already has a key, it is kept.
func (k *Keyring) Create(ctx context.Context, customerID string) error {
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("create customer key: %w", err)
	}
	idb := make([]byte, 8)
	rand.Read(idb)
	keyID := hex.EncodeToString(idb)
	env := sealEnvelope(customerID, keyID, key)
	defer clear(env)
	wrapped, err := k.master.wrap(env)
	if err != nil {
		return fmt.Errorf("create customer key: %w", err)
	}
	doc := keyDoc{ID: customerID, KeyID: keyID, MasterKeyID: k.master.ID(), Wrapped: wrapped, CreatedAt: k.now().UTC()}
	_, err = k.coll.InsertOne(ctx, doc)
	switch {
	case mongo.IsDuplicateKeyError(err):
		return nil // the customer's key exists already: it stays
	case err != nil:
		return fmt.Errorf("create customer key: %w", err)
	}
	// The key is in hand: cache it rather than read and unwrap it again.
	c, err := NewCipher(customerID, keyID, key)
	if err != nil {
		return fmt.Errorf("create customer key: %w", err)
	}
	k.mu.Lock()
	k.cache[customerID] = cacheEntry{cipher: c, expires: k.now().Add(k.ttl)}
	k.mu.Unlock()
	return nil
}

// Cipher returns the customer's cipher, from the cache or by unwrapping its
// key, or an error matching ErrKeyNotFound once the key is destroyed.
func (k *Keyring) Cipher(ctx context.Context, customerID string) (*Cipher, error) {
	now := k.now()
	k.mu.Lock()
	if e, ok := k.cache[customerID]; ok {
		if now.Before(e.expires) {
			k.mu.Unlock()
			return e.cipher, nil
		}
		e.cipher.destroy()
		delete(k.cache, customerID)
	}
	k.mu.Unlock()

	var doc keyDoc
	err := k.coll.FindOne(ctx, bson.D{{Key: "_id", Value: customerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load customer key: %w", err)
	}
	c, err := k.open(doc)
	if err != nil {
		return nil, fmt.Errorf("load customer key: %w", err)
	}
	k.mu.Lock()
	k.cache[customerID] = cacheEntry{cipher: c, expires: now.Add(k.ttl)}
	k.mu.Unlock()
	return c, nil
}

func (k *Keyring) open(doc keyDoc) (*Cipher, error) {
	env, err := k.master.unwrap(doc.Wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(env)
	key, err := openEnvelope(env, doc.ID, doc.KeyID)
	if err != nil {
		return nil, err
	}
	return NewCipher(doc.ID, doc.KeyID, key)
}

// Destroy deletes the customer's key for good and forgets its cached copy.
// Destroying a key that is already gone succeeds.
func (k *Keyring) Destroy(ctx context.Context, customerID string) error {
	k.mu.Lock()
	if e, ok := k.cache[customerID]; ok {
		e.cipher.destroy()
		delete(k.cache, customerID)
	}
	k.mu.Unlock()
	if _, err := k.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: customerID}}); err != nil {
		return fmt.Errorf("destroy customer key: %w", err)
	}
	// A Cipher call racing with the delete may have re-cached the key.
	k.mu.Lock()
	if e, ok := k.cache[customerID]; ok {
		e.cipher.destroy()
		delete(k.cache, customerID)
	}
	k.mu.Unlock()
	return nil
}

// Rewrap re-wraps every key wrapped under an older master identity under
// the current one, so the old identity can be retired. Each update is
// conditional on the old wrapped value, so concurrent runs are safe. It
// returns how many keys it moved.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	cur, err := k.coll.Find(ctx, bson.D{{Key: "masterKeyId", Value: bson.D{{Key: "$ne", Value: k.master.ID()}}}})
	if err != nil {
		return 0, fmt.Errorf("rewrap: %w", err)
	}
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("rewrap: %w", err)
	}
	n := 0
	for _, doc := range docs {
		env, err := k.master.unwrap(doc.Wrapped)
		if err != nil {
			return n, fmt.Errorf("rewrap %s: %w", doc.ID, err)
		}
		if _, err := openEnvelope(env, doc.ID, doc.KeyID); err != nil {
			clear(env)
			return n, fmt.Errorf("rewrap %s: %w", doc.ID, err)
		}
		wrapped, err := k.master.wrap(env)
		clear(env)
		if err != nil {
			return n, fmt.Errorf("rewrap %s: %w", doc.ID, err)
		}
		res, err := k.coll.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: doc.ID}, {Key: "wrapped", Value: doc.Wrapped}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "wrapped", Value: wrapped}, {Key: "masterKeyId", Value: k.master.ID()}}}})
		if err != nil {
			return n, fmt.Errorf("rewrap %s: %w", doc.ID, err)
		}
		n += int(res.ModifiedCount)
	}
	return n, nil
}
