package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
)

// CertificateType is the JWS typ of erasure certificates.
const CertificateType = "erasure-certificate+jwt"

// ErasureKeys are the Ed25519 keys that sign erasure certificates: each
// seed stored only wrapped under the master key (label-bound, like the
// token keys), and never deleted, so every certificate ever issued stays
// verifiable against ErasureKeys.JWKS. The newest key signs.
type ErasureKeys struct {
	coll   *mongo.Collection
	master *crypto.MasterKey
	now    func() time.Time
	// current remembers the signing key for a minute, as the keyring
	// remembers customer keys: a shred need not read and unwrap it again.
	current *ttl.Cache[string, erasureSigner]
}

type erasureSigner struct {
	kid  string
	priv ed25519.PrivateKey
}

// NewErasureKeys returns the erasure keys kept in coll (erasure_keys).
func NewErasureKeys(coll *mongo.Collection, master *crypto.MasterKey, now func() time.Time) *ErasureKeys {
	if now == nil {
		now = time.Now
	}
	return &ErasureKeys{coll: coll, master: master, now: now, current: ttl.New[string, erasureSigner](1, time.Minute, now)}
}

func erasureLabel(kid string) string { return "switchboard erasure certificate key " + kid }

func (e *ErasureKeys) all(ctx context.Context) ([]keyDoc, error) {
	cur, err := e.coll.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("load erasure keys: %w", err)
	}
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("load erasure keys: %w", err)
	}
	slices.SortFunc(docs, func(a, b keyDoc) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return docs, nil
}

// signer returns the newest key, creating the first one when there is none
// (two instances creating at once make two keys: both are published).
func (e *ErasureKeys) signer(ctx context.Context) (string, ed25519.PrivateKey, error) {
	if s, ok := e.current.Get(""); ok {
		return s.kid, s.priv, nil
	}
	kid, priv, err := e.load(ctx)
	if err != nil {
		return "", nil, err
	}
	e.current.Add("", erasureSigner{kid, priv})
	return kid, priv, nil
}

func (e *ErasureKeys) load(ctx context.Context) (string, ed25519.PrivateKey, error) {
	docs, err := e.all(ctx)
	if err != nil {
		return "", nil, err
	}
	if len(docs) == 0 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", nil, err
		}
		id := make([]byte, 8)
		rand.Read(id)
		kid := "erasure-" + hex.EncodeToString(id)
		wrapped, err := e.master.WrapSecret(erasureLabel(kid), priv.Seed())
		if err != nil {
			return "", nil, err
		}
		doc := keyDoc{ID: kid, PublicKey: pub, Wrapped: wrapped, MasterKeyID: e.master.ID(), CreatedAt: e.now().UTC().Truncate(time.Millisecond)}
		if _, err := e.coll.InsertOne(ctx, doc); err != nil {
			return "", nil, fmt.Errorf("create erasure key: %w", err)
		}
		return kid, priv, nil
	}
	seed, err := e.master.UnwrapSecret(erasureLabel(docs[0].ID), docs[0].Wrapped)
	if err != nil {
		return "", nil, fmt.Errorf("open erasure key: %w", err)
	}
	defer clear(seed)
	return docs[0].ID, ed25519.NewKeyFromSeed(seed), nil
}

// Sign issues a certificate: a compact JWS (EdDSA, typ
// erasure-certificate+jwt, the key's kid) over claims.
func (e *ErasureKeys) Sign(ctx context.Context, claims map[string]any) (string, error) {
	kid, priv, err := e.signer(ctx)
	if err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims))
	t.Header["kid"], t.Header["typ"] = kid, CertificateType
	out, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign certificate: %w", err)
	}
	return out, nil
}

// JWKS returns every erasure key's public half, newest first: a key is
// never dropped, so a certificate stays verifiable after any rotation.
func (e *ErasureKeys) JWKS(ctx context.Context) ([]JWK, error) {
	docs, err := e.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JWK, len(docs))
	for i, d := range docs {
		out[i] = JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(d.PublicKey), Kid: d.ID, Use: "sig", Alg: "EdDSA"}
	}
	return out, nil
}

// Rewrap re-wraps every erasure key under the current master identity and
// returns how many it moved.
func (e *ErasureKeys) Rewrap(ctx context.Context) (int, error) {
	docs, err := e.all(ctx)
	if err != nil {
		return 0, err
	}
	moved := 0
	for _, d := range docs {
		if d.MasterKeyID == e.master.ID() {
			continue
		}
		seed, err := e.master.UnwrapSecret(erasureLabel(d.ID), d.Wrapped)
		if err != nil {
			return moved, fmt.Errorf("rewrap erasure key %s: %w", d.ID, err)
		}
		wrapped, err := e.master.WrapSecret(erasureLabel(d.ID), seed)
		clear(seed)
		if err != nil {
			return moved, fmt.Errorf("rewrap erasure key %s: %w", d.ID, err)
		}
		d.Wrapped, d.MasterKeyID = wrapped, e.master.ID()
		// Only rewrap writes a key after its creation; a concurrent one
		// writes the same key under the same identity.
		if _, err := e.coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d); err != nil {
			return moved, fmt.Errorf("rewrap erasure key %s: %w", d.ID, err)
		}
		moved++
	}
	return moved, nil
}
