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
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
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

// CreatePartner registers a partner and returns it with its API key, which
// is shown only here: only a hash of it is stored.
func (s *Service) CreatePartner(ctx context.Context, name string) (Partner, string, error) {
	name = strings.TrimSpace(name)
	if n := utf8.RuneCountInString(name); n < 1 || n > 200 {
		return Partner{}, "", switchboard.Invalid("name", "must be 1 to 200 characters")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	prefix, key := newAPIKey()
	doc := partnerDoc{ID: id.String(), Name: name, KeyPrefix: prefix, KeyHash: hashKey(key), CreatedAt: s.now()}
	if _, err := s.cfg.Control.Collection(partnersColl).InsertOne(ctx, doc); err != nil {
		return Partner{}, "", fmt.Errorf("create partner: %w", err)
	}
	return Partner{ID: doc.ID, Name: doc.Name, CreatedAt: doc.CreatedAt}, key, nil
}

// authTTL is how long a verified API key is remembered (by its hash).
const authTTL = 30 * time.Second

// AuthenticatePartner returns the partner that owns apiKey, or ErrUnauthorized.
func (s *Service) AuthenticatePartner(ctx context.Context, apiKey string) (Partner, error) {
	prefix := keyPrefix(apiKey)
	if prefix == "" {
		return Partner{}, ErrUnauthorized
	}
	sum := string(hashKey(apiKey))
	if p, ok := s.partners.Get(sum); ok {
		return p, nil
	}
	var doc partnerDoc
	err := s.cfg.Control.Collection(partnersColl).FindOne(ctx, bson.D{{Key: "keyPrefix", Value: prefix}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Partner{}, ErrUnauthorized
	}
	if err != nil {
		return Partner{}, fmt.Errorf("authenticate partner: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(sum), doc.KeyHash) != 1 {
		return Partner{}, ErrUnauthorized
	}
	p := Partner{ID: doc.ID, Name: doc.Name, CreatedAt: doc.CreatedAt}
	s.partners.Add(sum, p)
	return p, nil
}
