package tenants

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
)

// A partner API key is "sbp_<id>_<secret>": the id (12 base32 characters)
// is stored in the clear and finds the partner, so keys can be recognised
// and revoked one by one; the secret is 256 random bits, and only a SHA-256
// of the whole key is stored. A fast hash is enough for a key of that
// entropy; the comparison is constant-time.
const keyScheme = "sbp_"

var keyIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newAPIKey() (prefix, key string) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	prefix = keyScheme + strings.ToLower(keyIDEncoding.EncodeToString(id))[:12]
	return prefix, prefix + "_" + base64.RawURLEncoding.EncodeToString(secret)
}

// keyPrefix returns the stored prefix of a presented key, or "" when the key
// is not of our shape.
func keyPrefix(key string) string {
	if !strings.HasPrefix(key, keyScheme) || len(key) != len(keyScheme)+12+1+43 || key[len(keyScheme)+12] != '_' {
		return ""
	}
	return key[:len(keyScheme)+12]
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Collections of partners' keys and names.
const (
	partnerKeysColl  = "partner_keys"  // _id: a key's prefix
	partnerNamesColl = "partner_names" // _id: a partner's name, folded: the claim on it
	revocationsColl  = "partner_revocations"
)

// partnerKeyDoc is one API key of a partner: only its hash is stored.
// ExpiresAt is set when a rotation retires the key.
type partnerKeyDoc struct {
	ID        string     `bson:"_id"` // the key's prefix, "sbp_<12 chars>"
	PartnerID string     `bson:"partnerId"`
	Hash      []byte     `bson:"hash"`
	CreatedAt time.Time  `bson:"createdAt"`
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

// revocationDoc records that a partner's keys are all refused from At on:
// an insert-only fact, so revoking twice is revoking once.
type revocationDoc struct {
	ID string    `bson:"_id"` // the partner id
	At time.Time `bson:"at"`
}

// RotationGrace is how long a key replaced by RotatePartnerKey keeps
// working (unless rotated with now).
const RotationGrace = 24 * time.Hour

// PartnerInfo is a partner as the operator's list shows it: never a key.
type PartnerInfo struct {
	Partner
	KeyPrefix string
	RevokedAt *time.Time
}

func (s *Service) newPartnerKey(ctx context.Context, partnerID string) (string, error) {
	prefix, key := newAPIKey()
	doc := partnerKeyDoc{ID: prefix, PartnerID: partnerID, Hash: hashKey(key), CreatedAt: s.now()}
	// Its entry in the partner's range first: a key is never unlisted.
	if err := s.indexPartnerKey(ctx, doc); err != nil {
		return "", err
	}
	if _, err := s.cfg.Control.Collection(partnerKeysColl).InsertOne(ctx, doc); err != nil {
		return "", err
	}
	return key, nil
}

// CreatePartner registers a partner and returns it with its API key, which
// is shown only here: only a hash of it is stored. Names are unique,
// ignoring case (ErrPartnerNameTaken): the folded name is claimed first, so
// two concurrent creates of one name make one partner.
func (s *Service) CreatePartner(ctx context.Context, name string) (Partner, string, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n < 1 || n > 200 {
		return Partner{}, "", switchboard.Invalid("name", "must be 1 to 200 characters")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	doc := partnerDoc{ID: id.String(), Name: name, CreatedAt: s.now()}
	_, err = s.cfg.Control.Collection(partnerNamesColl).InsertOne(ctx, bson.D{{Key: "_id", Value: strings.ToLower(name)}, {Key: "partnerId", Value: doc.ID}})
	if mongo.IsDuplicateKeyError(err) {
		return Partner{}, "", ErrPartnerNameTaken
	}
	if err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	// The partner, then its key: a crash between leaves a partner without
	// a key (rotate-key gives it one), never a key without a partner.
	if _, err := s.cfg.Control.Collection(partnersColl).InsertOne(ctx, doc); err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	key, err := s.newPartnerKey(ctx, doc.ID)
	if err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	return Partner{ID: doc.ID, Name: doc.Name, CreatedAt: doc.CreatedAt}, key, nil
}

// Partners lists every partner, oldest first, with the prefix of its newest
// key (an operator's command: it scans).
func (s *Service) Partners(ctx context.Context) ([]PartnerInfo, error) {
	var docs []partnerDoc
	if err := findAll(ctx, s.cfg.Control.Collection(partnersColl), &docs); err != nil {
		return nil, fmt.Errorf("list partners: %w", err)
	}
	var keys []partnerKeyDoc
	if err := findAll(ctx, s.cfg.Control.Collection(partnerKeysColl), &keys); err != nil {
		return nil, fmt.Errorf("list partners: %w", err)
	}
	var revs []revocationDoc
	if err := findAll(ctx, s.cfg.Control.Collection(revocationsColl), &revs); err != nil {
		return nil, fmt.Errorf("list partners: %w", err)
	}
	out := make([]PartnerInfo, len(docs))
	for i, d := range docs {
		out[i] = PartnerInfo{Partner: Partner{ID: d.ID, Name: d.Name, CreatedAt: d.CreatedAt.UTC()}, KeyPrefix: d.KeyPrefix}
		var newest time.Time
		for _, k := range keys {
			if k.PartnerID == d.ID && !k.CreatedAt.Before(newest) {
				out[i].KeyPrefix, newest = k.ID, k.CreatedAt
			}
		}
		for _, r := range revs {
			if r.ID == d.ID {
				at := r.At.UTC()
				out[i].RevokedAt = &at
			}
		}
	}
	slices.SortFunc(out, func(a, b PartnerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func findAll[T any](ctx context.Context, c *mongo.Collection, out *[]T) error {
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		return err
	}
	return cur.All(ctx, out)
}

// RotatePartnerKey gives a partner a new API key (returned, shown only
// here) and retires its other keys after RotationGrace, or at once with
// now. The new key is stored before the old ones are retired: a crash in
// between leaves the partner with one key too many, never none.
func (s *Service) RotatePartnerKey(ctx context.Context, partnerID string, now bool) (Partner, string, error) {
	var doc partnerDoc
	err := s.cfg.Control.Collection(partnersColl).FindOne(ctx, bson.D{{Key: "_id", Value: partnerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Partner{}, "", ErrNotFound
	}
	if err != nil {
		return Partner{}, "", fmt.Errorf("rotate partner key: %w", err)
	}
	key, err := s.newPartnerKey(ctx, partnerID)
	if err != nil {
		return Partner{}, "", fmt.Errorf("rotate partner key: %w", err)
	}
	retire := s.now().Add(RotationGrace)
	if now {
		retire = s.now()
	}
	keys, err := s.partnerKeys(ctx, partnerID)
	if err != nil {
		return Partner{}, "", fmt.Errorf("rotate partner key: %w", err)
	}
	for _, k := range keys {
		if k.ID == keyPrefix(key) || (k.ExpiresAt != nil && !k.ExpiresAt.After(retire)) {
			continue
		}
		// Only rotations of this partner write its keys, and any of them
		// retiring a key sooner is what its caller asked for.
		k.ExpiresAt = &retire
		if _, err := s.cfg.Control.Collection(partnerKeysColl).ReplaceOne(ctx, bson.D{{Key: "_id", Value: k.ID}}, k); err != nil {
			return Partner{}, "", fmt.Errorf("rotate partner key: %w", err)
		}
	}
	if doc.KeyPrefix != "" && now {
		// A key from before partner_keys (on the partner itself) retires
		// only at once: it has no expiry of its own.
		doc.KeyPrefix, doc.KeyHash = "", nil
		if _, err := s.cfg.Control.Collection(partnersColl).ReplaceOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}, doc); err != nil {
			return Partner{}, "", fmt.Errorf("rotate partner key: %w", err)
		}
	}
	s.partners.Purge()
	return Partner{ID: doc.ID, Name: doc.Name, CreatedAt: doc.CreatedAt.UTC()}, key, nil
}

// RevokePartner refuses every key of a partner from now on (within authTTL
// on other processes); its customers are untouched.
func (s *Service) RevokePartner(ctx context.Context, partnerID string) error {
	n, err := s.cfg.Control.Collection(partnersColl).CountDocuments(ctx, bson.D{{Key: "_id", Value: partnerID}})
	if err != nil {
		return fmt.Errorf("revoke partner: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	_, err = s.cfg.Control.Collection(revocationsColl).InsertOne(ctx, revocationDoc{ID: partnerID, At: s.now()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("revoke partner: %w", err)
	}
	s.partners.Purge()
	return nil
}

// authTTL is how long a verified API key is remembered (by its hash): a
// revocation or a retired key reaches other processes within it.
const authTTL = 5 * time.Second

// AuthenticatePartner returns the partner that owns apiKey, or
// ErrUnauthorized: a key it never had, one a rotation retired, or any key
// of a revoked partner. Three reads by _id, remembered for authTTL.
func (s *Service) AuthenticatePartner(ctx context.Context, apiKey string) (Partner, error) {
	prefix := keyPrefix(apiKey)
	if prefix == "" {
		return Partner{}, ErrUnauthorized
	}
	sum := string(hashKey(apiKey))
	if p, ok := s.partners.Get(sum); ok {
		return p, nil
	}
	control := s.cfg.Control
	var k partnerKeyDoc
	err := control.Collection(partnerKeysColl).FindOne(ctx, bson.D{{Key: "_id", Value: prefix}}).Decode(&k)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		// A key from before partner_keys lives on its partner (a scan on
		// the embedded engine; rotating it moves the partner over).
		var legacy partnerDoc
		err := control.Collection(partnersColl).FindOne(ctx, bson.D{{Key: "keyPrefix", Value: prefix}}).Decode(&legacy)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Partner{}, ErrUnauthorized
		}
		if err != nil {
			return Partner{}, fmt.Errorf("authenticate partner: %w", err)
		}
		k = partnerKeyDoc{ID: prefix, PartnerID: legacy.ID, Hash: legacy.KeyHash}
	case err != nil:
		return Partner{}, fmt.Errorf("authenticate partner: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(sum), k.Hash) != 1 || (k.ExpiresAt != nil && !s.now().Before(*k.ExpiresAt)) {
		return Partner{}, ErrUnauthorized
	}
	var doc partnerDoc
	if err := control.Collection(partnersColl).FindOne(ctx, bson.D{{Key: "_id", Value: k.PartnerID}}).Decode(&doc); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Partner{}, ErrUnauthorized
		}
		return Partner{}, fmt.Errorf("authenticate partner: %w", err)
	}
	switch err := control.Collection(revocationsColl).FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Err(); {
	case err == nil:
		return Partner{}, ErrUnauthorized
	case !errors.Is(err, mongo.ErrNoDocuments):
		return Partner{}, fmt.Errorf("authenticate partner: %w", err)
	}
	p := Partner{ID: doc.ID, Name: doc.Name, CreatedAt: doc.CreatedAt}
	s.partners.Add(sum, p)
	return p, nil
}

// partnerKeyIndexColl lists each partner's keys: _id "<partner>/<prefix>",
// written before the key, so a partner's keys are one _id range.
const partnerKeyIndexColl = "partner_key_index"

func (s *Service) indexPartnerKey(ctx context.Context, k partnerKeyDoc) error {
	_, err := s.cfg.Control.Collection(partnerKeyIndexColl).InsertOne(ctx, bson.D{{Key: "_id", Value: k.PartnerID + "/" + k.ID}})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("list partner key: %w", err)
	}
	return nil
}

// partnerKeys reads one partner's keys: its range of the key index, then
// each key by _id (an entry whose key was never written is skipped).
func (s *Service) partnerKeys(ctx context.Context, partnerID string) ([]partnerKeyDoc, error) {
	type entry struct {
		ID string `bson:"_id"`
	}
	entries, err := store.All[entry](ctx, store.Plain(s.cfg.Control.Collection(partnerKeyIndexColl)), store.Prefix(partnerID+"/"))
	if err != nil {
		return nil, err
	}
	var keys []partnerKeyDoc
	for _, e := range entries {
		var k partnerKeyDoc
		err := s.cfg.Control.Collection(partnerKeysColl).FindOne(ctx, bson.D{{Key: "_id", Value: strings.TrimPrefix(e.ID, partnerID+"/")}}).Decode(&k)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ReindexPartnerKeys lists every key in its partner's range: for keys
// written before the range existed (switchboard migrate).
func (s *Service) ReindexPartnerKeys(ctx context.Context) (int, error) {
	var keys []partnerKeyDoc
	if err := findAll(ctx, s.cfg.Control.Collection(partnerKeysColl), &keys); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := s.indexPartnerKey(ctx, k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
