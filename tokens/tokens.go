// Package tokens issues and verifies the short-lived JWTs of tenant apps.
// Tokens are EdDSA (Ed25519) with a kid header, signed by keys kept in
// signing_keys with their private half wrapped under the master key. A new
// signing key is made every 30 days; a retired key stays published (and
// trusted) until every token it signed has expired, so tokens survive
// restarts and rotation. Verifying a token also requires its customer to be
// ACTIVE, read through a cache that is never more than 5 seconds old.
package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/ttl"
	"github.com/switchboard/switchboard/tenants"

	"github.com/switchboard/switchboard"
)

// Scopes a token may carry.
const (
	ContactsRead  = "contacts:read"
	ContactsWrite = "contacts:write"
	MessagesRead  = "messages:read"
	MessagesSend  = "messages:send"
	WebhooksRead  = "webhooks:read"
	WebhooksWrite = "webhooks:write"
)

// AllScopes returns every scope: the default grant. Each call returns a new
// slice, so no caller can change what another one gets.
func AllScopes() []string {
	return []string{ContactsRead, ContactsWrite, MessagesRead, MessagesSend, WebhooksRead, WebhooksWrite}
}

// Audience of every token.
const Audience = "switchboard"

// Rotation and lifetime.
const (
	RotateEvery   = 30 * 24 * time.Hour
	MaxTTL        = 86400 * time.Second
	MinTTL        = 60 * time.Second
	DefaultTTL    = time.Hour
	Leeway        = 30 * time.Second
	statusMaxAge  = 5 * time.Second
	keyRefreshGap = 5 * time.Second
)

// Sentinel errors.
var (
	// ErrInvalidToken is anything wrong with a token itself; the error is an
	// *InvalidTokenError saying which check failed.
	ErrInvalidToken = errors.New("invalid token")
	// ErrRefusedNotActive: the token is fine, its customer is not ACTIVE
	// (it matches switchboard.ErrCustomerNotActive too).
	ErrRefusedNotActive = fmt.Errorf("token refused: %w", switchboard.ErrCustomerNotActive)
)

// StatusFunc reads a customer's lifecycle status.
type StatusFunc func(ctx context.Context, customerID string) (tenants.Status, error)

// Claims are what a verified token says.
type Claims struct {
	CustomerID string
	Subject    string
	Scopes     []string
	ID         string
	ExpiresAt  time.Time
}

// Has reports whether the token carries scope.
func (c Claims) Has(scope string) bool {
	for _, s := range c.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

type keyDoc struct {
	ID          string    `bson:"_id"`
	PublicKey   []byte    `bson:"publicKey"`
	Wrapped     []byte    `bson:"wrapped"` // the Ed25519 seed, age-wrapped
	MasterKeyID string    `bson:"masterKeyId"`
	CreatedAt   time.Time `bson:"createdAt"`
}

type signingKey struct {
	id      string
	pub     ed25519.PublicKey
	priv    ed25519.PrivateKey
	created time.Time
}

// Service mints and verifies tokens. It is safe for concurrent use.
type Service struct {
	coll   *mongo.Collection
	master *crypto.MasterKey
	issuer string
	status StatusFunc
	now    func() time.Time

	mu          sync.Mutex
	keys        map[string]*signingKey
	lastRefresh time.Time
	statuses    *ttl.Cache[string, tenants.Status] // customer statuses, at most statusMaxAge old
}

// Config holds what a Service needs.
type Config struct {
	Keys   *mongo.Collection // signing_keys
	Master *crypto.MasterKey
	Issuer string // SWITCHBOARD_PUBLIC_URL
	Status StatusFunc
	Now    func() time.Time
}

// NewService returns a Service. Call EnsureKey at start.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{coll: cfg.Keys, master: cfg.Master, issuer: cfg.Issuer, status: cfg.Status, now: cfg.Now,
		keys: map[string]*signingKey{}, statuses: ttl.New[string, tenants.Status](100_000, statusMaxAge, cfg.Now)}
}

func wrapLabel(kid string) string { return "switchboard token signing key " + kid }

// refresh loads every signing key still worth trusting.
func (s *Service) refresh(ctx context.Context) error {
	cutoff := s.now().Add(-(RotateEvery + MaxTTL + Leeway))
	cur, err := s.coll.Find(ctx, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: cutoff}}}})
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	keys := map[string]*signingKey{}
	for _, d := range docs {
		s.mu.Lock()
		k, ok := s.keys[d.ID]
		s.mu.Unlock()
		if !ok {
			seed, err := s.master.UnwrapSecret(wrapLabel(d.ID), d.Wrapped)
			if err != nil || len(seed) != ed25519.SeedSize {
				return fmt.Errorf("open signing key %s: %w", d.ID, crypto.ErrDecrypt)
			}
			priv := ed25519.NewKeyFromSeed(seed)
			clear(seed)
			k = &signingKey{id: d.ID, pub: priv.Public().(ed25519.PublicKey), priv: priv, created: d.CreatedAt}
		}
		keys[d.ID] = k
	}
	s.mu.Lock()
	s.keys, s.lastRefresh = keys, s.now()
	s.mu.Unlock()
	return nil
}

// current returns the newest key, making one when there is none younger
// than the rotation period.
func (s *Service) current(ctx context.Context) (*signingKey, error) {
	pick := func() *signingKey {
		s.mu.Lock()
		defer s.mu.Unlock()
		var best *signingKey
		for _, k := range s.keys {
			if best == nil || k.created.After(best.created) {
				best = k
			}
		}
		if best != nil && s.now().Sub(best.created) < RotateEvery {
			return best
		}
		return nil
	}
	if k := pick(); k != nil {
		return k, nil
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	if k := pick(); k != nil {
		return k, nil
	}
	if err := s.createKey(ctx); err != nil {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	if k := pick(); k != nil {
		return k, nil
	}
	return nil, errors.New("no signing key")
}

// EnsureKey makes sure a current signing key exists (at start).
func (s *Service) EnsureKey(ctx context.Context) error {
	_, err := s.current(ctx)
	return err
}

func (s *Service) createKey(ctx context.Context) error {
	seed := make([]byte, ed25519.SeedSize)
	defer clear(seed)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	idb := make([]byte, 8)
	rand.Read(idb)
	kid := hex.EncodeToString(idb)
	wrapped, err := s.master.WrapSecret(wrapLabel(kid), seed)
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	doc := keyDoc{ID: kid, PublicKey: pub, Wrapped: wrapped, MasterKeyID: s.master.ID(), CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if _, err := s.coll.InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	return nil
}

type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	Scope    string `json:"scope"`
}

// Token is a minted access token.
type Token struct {
	AccessToken string
	ExpiresAt   time.Time
	ExpiresIn   int
}

// MintInput is a token request: Scopes nil means every scope, TTLSeconds
// nil the default lifetime.
type MintInput struct {
	CustomerID string
	Subject    string
	Scopes     []string
	TTLSeconds *int
}

// validate checks a request against the contract and returns its subject
// (trimmed), scopes and lifetime, or a ValidationError naming each bad field.
func (in MintInput) validate() (string, []string, time.Duration, error) {
	var verr switchboard.ValidationError
	subject := strings.TrimSpace(in.Subject)
	if n := utf8.RuneCountInString(subject); n < 1 || n > 200 {
		verr.Add("subject", "must be 1 to 200 characters")
	}
	scopes := AllScopes()
	if in.Scopes != nil {
		scopes = in.Scopes
		if len(scopes) == 0 {
			verr.Add("scopes", "must name at least one scope")
		}
		for i, sc := range scopes {
			if !slices.Contains(AllScopes(), sc) {
				verr.Add("scopes["+strconv.Itoa(i)+"]", "must be one of "+strings.Join(AllScopes(), ", "))
			}
		}
	}
	ttl := DefaultTTL
	if in.TTLSeconds != nil {
		ttl = time.Duration(*in.TTLSeconds) * time.Second
		if ttl < MinTTL || ttl > MaxTTL {
			verr.Add("ttlSeconds", "must be between 60 and 86400")
		}
	}
	return subject, scopes, ttl, verr.Err()
}

// Mint signs a token for a user of an ACTIVE customer. A request that
// breaks the contract's rules is a *switchboard.ValidationError; a customer
// that is not ACTIVE (read now, not through the cache) is
// switchboard.ErrCustomerNotActive.
func (s *Service) Mint(ctx context.Context, in MintInput) (Token, error) {
	subject, scopes, ttl, err := in.validate()
	if err != nil {
		return Token{}, err
	}
	st, err := s.status(ctx, in.CustomerID)
	if err != nil {
		return Token{}, fmt.Errorf("mint token: %w", err)
	}
	if st != tenants.StatusActive {
		return Token{}, switchboard.ErrCustomerNotActive
	}
	customerID := in.CustomerID
	k, err := s.current(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("mint token: %w", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	exp := now.Add(ttl)
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Subject: subject, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
			ID: uuid.Must(uuid.NewV7()).String(),
		},
		TenantID: customerID,
		Scope:    strings.Join(scopes, " "),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.id
	t.Header["typ"] = TokenType
	signed, err := t.SignedString(k.priv)
	if err != nil {
		return Token{}, fmt.Errorf("mint token: %w", err)
	}
	return Token{AccessToken: signed, ExpiresAt: exp, ExpiresIn: int(ttl / time.Second)}, nil
}

// publicKey finds a trusted key by kid, reloading (at most every few
// seconds) when it is unknown: another instance may have rotated.
func (s *Service) publicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	k, ok := s.keys[kid]
	stale := s.now().Sub(s.lastRefresh) > keyRefreshGap
	s.mu.Unlock()
	if ok {
		return k.pub, nil
	}
	if !stale {
		return nil, ErrInvalidToken
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	k, ok = s.keys[kid]
	s.mu.Unlock()
	if !ok {
		return nil, ErrInvalidToken
	}
	return k.pub, nil
}

// InvalidTokenError says which check a token failed (never echoing the
// token). It matches ErrInvalidToken.
type InvalidTokenError struct {
	// Check is one of: malformed, type, critical header, unknown key,
	// signature, expired, not yet valid, issuer, audience, lifetime, claims,
	// customer.
	Check string
}

func (e *InvalidTokenError) Error() string { return "invalid token: " + e.Check }

// Is makes errors.Is(err, ErrInvalidToken) true.
func (e *InvalidTokenError) Is(target error) bool { return target == ErrInvalidToken }

func invalid(check string) error { return &InvalidTokenError{Check: check} }

// numericTimes reports whether the token's exp, nbf and iat are JSON
// numbers: the JWT library also takes a number written as a string
// ("exp":"123"), which RFC 7519 does not allow.
func numericTimes(raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var times struct {
		Exp, Nbf, Iat json.RawMessage
	}
	if err := json.Unmarshal(payload, &times); err != nil {
		return false
	}
	for _, t := range []json.RawMessage{times.Exp, times.Nbf, times.Iat} {
		if len(t) == 0 || (t[0] != '-' && (t[0] < '0' || t[0] > '9')) {
			return false
		}
	}
	return true
}

// TokenType is the JWT typ of access tokens (RFC 9068), minted and required.
const TokenType = "at+jwt"

// parseFailure names the check a jwt parse error failed.
func parseFailure(err error) error {
	var ite *InvalidTokenError
	switch {
	case errors.As(err, &ite):
		return ite
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("signature")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("not yet valid")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("audience")
	}
	return invalid("claims")
}

// Verify checks a token (typ at+jwt, no crit, EdDSA only, a known kid, iss,
// aud, exp, nbf and iat with 30 s leeway, a lifetime of at most MaxTTL,
// every claim present and of its type) and that its customer is ACTIVE.
// Anything wrong with the token is an *InvalidTokenError; an inactive
// customer is ErrRefusedNotActive, a shredded one tenants.ErrDataShredded.
func (s *Service) Verify(ctx context.Context, raw string) (Claims, error) {
	var claims tokenClaims
	var lookupErr error
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(s.issuer), jwt.WithAudience(Audience),
		jwt.WithLeeway(Leeway), jwt.WithIssuedAt(), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	_, err := parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != TokenType {
			return nil, invalid("type")
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, invalid("critical header")
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, invalid("unknown key")
		}
		k, err := s.publicKey(ctx, kid)
		if errors.Is(err, ErrInvalidToken) {
			return nil, invalid("unknown key")
		}
		if err != nil {
			lookupErr = err
		}
		return k, err
	})
	if lookupErr != nil {
		return Claims{}, lookupErr
	}
	if err != nil {
		return Claims{}, parseFailure(err)
	}
	if claims.TenantID == "" || claims.Subject == "" || claims.NotBefore == nil || claims.IssuedAt == nil || claims.ID == "" {
		return Claims{}, invalid("claims")
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxTTL {
		return Claims{}, invalid("lifetime")
	}
	if !numericTimes(raw) {
		return Claims{}, invalid("claims")
	}
	st, err := s.customerStatus(ctx, claims.TenantID)
	if err != nil {
		if errors.Is(err, tenants.ErrNotFound) {
			return Claims{}, invalid("customer")
		}
		return Claims{}, err
	}
	switch st {
	case tenants.StatusActive:
	case tenants.StatusShredded:
		return Claims{}, tenants.ErrDataShredded
	default:
		return Claims{}, ErrRefusedNotActive
	}
	return Claims{CustomerID: claims.TenantID, Subject: claims.Subject, Scopes: strings.Fields(claims.Scope),
		ID: claims.ID, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// customerStatus reads through a cache no older than 5 seconds, so a
// deactivation reaches tokens already issued within that time.
func (s *Service) customerStatus(ctx context.Context, customerID string) (tenants.Status, error) {
	if st, ok := s.statuses.Get(customerID); ok {
		return st, nil
	}
	st, err := s.status(ctx, customerID)
	if err != nil {
		return "", err
	}
	s.statuses.Add(customerID, st)
	return st, nil
}

// Forget drops what the service remembers of a customer's status, so its
// tokens are judged by the next read: the instance that changes a
// customer's status calls it at once (other instances catch up within
// statusMaxAge).
func (s *Service) Forget(customerID string) { s.statuses.Remove(customerID) }

// JWK is one public key as /.well-known/jwks.json publishes it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS returns every key a valid token may be signed with, newest first.
func (s *Service) JWKS(ctx context.Context) ([]JWK, error) {
	if _, err := s.current(ctx); err != nil {
		return nil, err
	}
	if err := s.refresh(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	keys := make([]*signingKey, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i].created.After(keys[j].created) })
	out := make([]JWK, len(keys))
	for i, k := range keys {
		out[i] = JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.pub), Kid: k.id, Use: "sig", Alg: "EdDSA"}
	}
	return out, nil
}

// Rewrap re-wraps every signing key wrapped under an older master identity
// under the current one (master key rotation); it returns how many moved.
func (s *Service) Rewrap(ctx context.Context) (int, error) {
	cur, err := s.coll.Find(ctx, bson.D{{Key: "masterKeyId", Value: bson.D{{Key: "$ne", Value: s.master.ID()}}}})
	if err != nil {
		return 0, fmt.Errorf("rewrap signing keys: %w", err)
	}
	var docs []keyDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("rewrap signing keys: %w", err)
	}
	n := 0
	for _, d := range docs {
		seed, err := s.master.UnwrapSecret(wrapLabel(d.ID), d.Wrapped)
		if err != nil {
			return n, fmt.Errorf("rewrap signing key %s: %w", d.ID, err)
		}
		wrapped, err := s.master.WrapSecret(wrapLabel(d.ID), seed)
		clear(seed)
		if err != nil {
			return n, fmt.Errorf("rewrap signing key %s: %w", d.ID, err)
		}
		res, err := s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "wrapped", Value: d.Wrapped}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "wrapped", Value: wrapped}, {Key: "masterKeyId", Value: s.master.ID()}}}})
		if err != nil {
			return n, fmt.Errorf("rewrap signing key %s: %w", d.ID, err)
		}
		n += int(res.ModifiedCount)
	}
	return n, nil
}
