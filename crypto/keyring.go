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
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/internal/ttl"
)

// MaxCacheTTL bounds how long the keyring keeps an unwrapped key in memory,
// sweeping included.
const MaxCacheTTL = 60 * time.Second

// DefaultCacheTTL is the keyring's cache TTL unless WithCacheTTL says
// otherwise.
const DefaultCacheTTL = 30 * time.Second

// maxTTL is the longest TTL: the sweeper runs every TTL/4, so an idle entry
// is gone by 5/4 of the TTL, within MaxCacheTTL.
const maxTTL = MaxCacheTTL * 4 / 5

// keyDoc is a customer key as stored: only ever age-wrapped.
type keyDoc struct {
	ID          string    `bson:"_id"`
	KeyID       string    `bson:"keyId"`
	MasterKeyID string    `bson:"masterKeyId"`
	Wrapped     []byte    `bson:"wrapped"`
	CreatedAt   time.Time `bson:"createdAt"`
}

// The wrapped plaintext is an envelope: version byte, customer id and key
// id (each one length byte and its bytes), then the 32 key bytes. age
// proves nothing about who wrapped a key (the recipient is public), so
// unwrapping checks that the envelope names the document's customer and key.
const envelopeV1 byte = 1

func sealEnvelope(customerID, keyID string, key []byte) []byte {
	b := make([]byte, 0, 3+len(customerID)+len(keyID)+len(key))
	b = append(b, envelopeV1, byte(len(customerID)))
	b = append(b, customerID...)
	b = append(b, byte(len(keyID)))
	b = append(b, keyID...)
	return append(b, key...)
}

// openEnvelope returns the key inside env (a subslice: env's owner clears
// it) if env is a v1 envelope for exactly customerID and keyID.
func openEnvelope(env []byte, customerID, keyID string) ([]byte, error) {
	if len(customerID) > 255 || len(keyID) > 255 {
		return nil, ErrDecrypt
	}
	want := sealEnvelope(customerID, keyID, nil)
	if len(env) != len(want)+KeySize || string(env[:len(want)]) != string(want) {
		return nil, ErrDecrypt
	}
	return env[len(want):], nil
}

// Keyring keeps one key per customer in the customer_keys collection,
// wrapped under the master key, and caches unwrapped keys (as Ciphers) for
// at most its cache TTL. It implements tenants.Keyring, is safe for
// concurrent use, and must be closed to stop its cache sweeper.
type Keyring struct {
	coll   *mongo.Collection
	master *MasterKey
	now    func() time.Time
	ttl    time.Duration

	mu    sync.Mutex // orders cache writes with destroys
	cache *ttl.Cache[string, *Cipher]
	// destroys counts Destroy calls: a load that started before one may
	// have read a key that is now gone, so it must not cache it.
	destroys uint64
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	loadHook func() // tests: runs between reading a key and caching it
}

// KeyringOption configures a Keyring.
type KeyringOption func(*Keyring)

// WithClock sets the clock the cache expires entries by (tests).
func WithClock(now func() time.Time) KeyringOption { return func(k *Keyring) { k.now = now } }

// WithCacheTTL sets how long an unwrapped key is kept after it was loaded,
// capped at 48 s so that, sweeping included, nothing stays longer than
// MaxCacheTTL. Zero or less disables the cache: every Cipher call unwraps.
func WithCacheTTL(d time.Duration) KeyringOption {
	return func(k *Keyring) { k.ttl = min(d, maxTTL) }
}

// NewKeyring returns a keyring over coll, wrapping new keys under master's
// current identity. Close stops its cache sweeper.
func NewKeyring(coll *mongo.Collection, master *MasterKey, opts ...KeyringOption) *Keyring {
	k := &Keyring{coll: coll, master: master, now: time.Now, ttl: DefaultCacheTTL,
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(k)
	}
	k.cache = ttl.New[string, *Cipher](100_000, max(k.ttl, 0), k.now)
	if k.ttl > 0 {
		go k.sweeper(max(k.ttl/4, time.Millisecond))
	} else {
		close(k.done)
	}
	return k
}

// String names the keyring's collection; it never prints keys.
func (k *Keyring) String() string {
	return "Keyring(" + k.coll.Database().Name() + "." + k.coll.Name() + ")"
}

// sweeper drops expired entries even when nobody asks for them again, so an
// idle customer's key does not linger.
func (k *Keyring) sweeper(every time.Duration) {
	defer close(k.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			k.sweep()
		}
	}
}

func (k *Keyring) sweep() { k.cache.DropExpired() }

// Close stops the sweeper and forgets every cached key. The keyring must
// not be used afterwards.
func (k *Keyring) Close() {
	k.once.Do(func() {
		close(k.stop)
		<-k.done
		k.cache.Purge()
	})
}

// Create makes the customer's key: 32 random bytes under a new random key
// id, wrapped to the current master recipient. If the customer already has
// a key, that key stays and Create succeeds, so a retried registration is
// safe.
func (k *Keyring) Create(ctx context.Context, customerID string) error {
	if customerID == "" || len(customerID) > 255 {
		return errors.New("create customer key: customer id must be 1 to 255 bytes")
	}
	key := make([]byte, KeySize)
	defer clear(key)
	rand.Read(key) // never fails: crypto/rand crashes the program instead
	keyID := newKeyID()
	env := sealEnvelope(customerID, keyID, key)
	defer clear(env)
	wrapped, err := k.master.wrap(env)
	if err != nil {
		return fmt.Errorf("create customer key: %w", err)
	}
	k.mu.Lock()
	gen := k.destroys
	k.mu.Unlock()
	doc := keyDoc{ID: customerID, KeyID: keyID, MasterKeyID: k.master.ID(), Wrapped: wrapped,
		CreatedAt: k.now().UTC().Truncate(time.Millisecond)}
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
	k.store(customerID, c, gen)
	return nil
}

func newKeyID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// store caches c unless caching is off or a Destroy started since gen was
// read (it may have deleted the key c was made from).
func (k *Keyring) store(customerID string, c *Cipher, gen uint64) {
	if k.ttl <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.destroys == gen {
		k.cache.Add(customerID, c)
	}
}

// Cipher returns the customer's cipher, from the cache or by unwrapping its
// key, or an error matching ErrKeyNotFound when the customer has no key
// (never created, or destroyed). A key document that does not unwrap with
// the master key, or whose envelope names another customer or key id, is an
// error matching ErrDecrypt.
func (k *Keyring) Cipher(ctx context.Context, customerID string) (*Cipher, error) {
	k.mu.Lock()
	gen := k.destroys
	c, ok := k.cache.Get(customerID)
	k.mu.Unlock()
	if ok {
		return c, nil
	}

	var doc keyDoc
	err := k.coll.FindOne(ctx, bson.D{{Key: "_id", Value: customerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load customer key: %w", err)
	}
	c, err = k.open(doc)
	if err != nil {
		return nil, fmt.Errorf("load customer key: %w", err)
	}
	if k.loadHook != nil {
		k.loadHook()
	}
	k.store(customerID, c, gen)
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

// Destroy deletes the customer's key for good and forgets its cached copy:
// once it returns, Cipher answers ErrKeyNotFound. Destroying a key that is
// already gone succeeds. A Cipher handed out earlier keeps working for
// whoever holds it; callers check the customer's status before every read.
func (k *Keyring) Destroy(ctx context.Context, customerID string) error {
	k.forget(customerID)
	if _, err := k.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: customerID}}); err != nil {
		return fmt.Errorf("destroy customer key: %w", err)
	}
	// A load that read the document before the delete must not cache it
	// after: forgetting again moves the generation past it.
	k.forget(customerID)
	return nil
}

func (k *Keyring) forget(customerID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.destroys++
	k.cache.Remove(customerID)
}

// KeyInfo names the customer's key and the master identity that wraps it,
// without unwrapping anything, or ErrKeyNotFound.
func (k *Keyring) KeyInfo(ctx context.Context, customerID string) (keyID, masterKeyID string, err error) {
	var doc keyDoc
	err = k.coll.FindOne(ctx, bson.D{{Key: "_id", Value: customerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", "", ErrKeyNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("customer key info: %w", err)
	}
	return doc.KeyID, doc.MasterKeyID, nil
}

// CountByMaster counts the live customer keys wrapped under each master
// identity, by its id (an operator's query: it scans).
func (k *Keyring) CountByMaster(ctx context.Context) (map[string]int, error) {
	return countByMaster(ctx, k.coll)
}

// countByMaster counts the documents of coll by their masterKeyId.
func countByMaster(ctx context.Context, coll *mongo.Collection) (map[string]int, error) {
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "masterKeyId", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("count keys: %w", err)
	}
	var docs []struct {
		MasterKeyID string `bson:"masterKeyId"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("count keys: %w", err)
	}
	out := map[string]int{}
	for _, d := range docs {
		out[d.MasterKeyID]++
	}
	return out, nil
}

// CountByMaster counts the documents of a collection of wrapped keys (the
// token signing keys, say) by the master identity that wraps each.
func CountByMaster(ctx context.Context, coll *mongo.Collection) (map[string]int, error) {
	return countByMaster(ctx, coll)
}

// Rewrap re-wraps every key wrapped under another master identity than the
// current one under the current one, so the old identity can be retired.
// The key, its id and its envelope stay the same. Each update is
// conditional on the wrapped value it read, so concurrent runs (or a
// concurrent Destroy) are safe. It returns how many keys it moved; a key
// that fails to re-wrap does not stop the others, and the first such
// failure is returned with the count of failures.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	current := k.master.ID()
	cur, err := k.coll.Find(ctx, bson.D{{Key: "masterKeyId", Value: bson.D{{Key: "$ne", Value: current}}}})
	if err != nil {
		return 0, fmt.Errorf("rewrap: %w", err)
	}
	// Read them all before writing: updating a collection under an open
	// cursor over it is not something every engine handles well.
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("rewrap: %w", err)
	}
	var (
		moved, failed int
		first         error
	)
	for _, doc := range docs {
		if err := ctx.Err(); err != nil {
			return moved, fmt.Errorf("rewrap: %w", err)
		}
		ok, err := k.rewrapOne(ctx, doc, current)
		if ok {
			moved++
		}
		if err != nil {
			failed++
			if first == nil {
				first = fmt.Errorf("key of %s: %w", doc.ID, err)
			}
		}
	}
	if first != nil {
		return moved, fmt.Errorf("rewrap: %d keys failed, first %w", failed, first)
	}
	return moved, nil
}

func (k *Keyring) rewrapOne(ctx context.Context, doc keyDoc, current string) (bool, error) {
	env, err := k.master.unwrap(doc.Wrapped)
	if err != nil {
		return false, err
	}
	defer clear(env)
	// Never bless a key that would not open: a swapped document stays
	// broken rather than being re-wrapped under the new identity.
	if _, err := openEnvelope(env, doc.ID, doc.KeyID); err != nil {
		return false, err
	}
	wrapped, err := k.master.wrap(env)
	if err != nil {
		return false, err
	}
	res, err := k.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: doc.ID}, {Key: "wrapped", Value: doc.Wrapped}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "wrapped", Value: wrapped}, {Key: "masterKeyId", Value: current}}}})
	if err != nil {
		return false, err
	}
	return res.ModifiedCount == 1, nil
}
