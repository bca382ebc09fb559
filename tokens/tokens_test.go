package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const cust = "0193a0c4-1111-7000-8000-000000000001"

func newService(t testing.TB) (*Service, *fakeclock.Clock, func() *Service) {
	t.Helper()
	db := storetest.MustOpen(t)
	master, _, err := crypto.LoadOrCreateDevMasterKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	status := func(context.Context, string) (tenants.Status, error) { return tenants.StatusActive, nil }
	mk := func() *Service {
		return NewService(Config{Keys: db.Control.Collection("signing_keys"), Master: master, Issuer: "https://sb.example", Status: status, Now: clk.Now})
	}
	return mk(), clk, mk
}

// sign makes a token with arbitrary claims under the service's current key.
// header entries replace the token's own (nil deletes one).
func sign(t *testing.T, s *Service, claims jwt.MapClaims, header ...map[string]any) string {
	t.Helper()
	k, err := s.current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.id
	tok.Header["typ"] = TokenType
	for _, h := range header {
		for name, v := range h {
			if v == nil {
				delete(tok.Header, name)
			} else {
				tok.Header[name] = v
			}
		}
	}
	out, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClaimsAreChecked(t *testing.T) {
	s, clk, _ := newService(t)
	now := clk.Now().Unix()
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "https://sb.example", "aud": "switchboard", "sub": "u", "tid": cust, "scope": "contacts:read",
			"iat": now, "nbf": now, "exp": now + 600, "jti": "j1"}
	}
	if _, err := s.Verify(t.Context(), sign(t, s, base())); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	for name, edit := range map[string]func(jwt.MapClaims){
		"wrong aud":        func(c jwt.MapClaims) { c["aud"] = "someone-else" },
		"no aud":           func(c jwt.MapClaims) { delete(c, "aud") },
		"wrong iss":        func(c jwt.MapClaims) { c["iss"] = "https://evil.example" },
		"expired":          func(c jwt.MapClaims) { c["exp"] = now - 31 },
		"no exp":           func(c jwt.MapClaims) { delete(c, "exp") },
		"not yet valid":    func(c jwt.MapClaims) { c["nbf"] = now + 31 },
		"issued later":     func(c jwt.MapClaims) { c["iat"] = now + 31 },
		"no tid":           func(c jwt.MapClaims) { delete(c, "tid") },
		"no sub":           func(c jwt.MapClaims) { delete(c, "sub") },
		"no nbf":           func(c jwt.MapClaims) { delete(c, "nbf") },
		"no jti":           func(c jwt.MapClaims) { delete(c, "jti") },
		"tid not a string": func(c jwt.MapClaims) { c["tid"] = 7 },
		"exp a string":     func(c jwt.MapClaims) { c["exp"] = fmt.Sprint(now + 600) },
		"iat a string":     func(c jwt.MapClaims) { c["iat"] = fmt.Sprint(now) },
		"lives too long":   func(c jwt.MapClaims) { c["exp"] = now + int64(MaxTTL/time.Second) + 1 },
	} {
		c := base()
		edit(c)
		if _, err := s.Verify(t.Context(), sign(t, s, c)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	for name, h := range map[string]map[string]any{
		"no typ":    {"typ": nil},
		"typ JWT":   {"typ": "JWT"},
		"crit":      {"crit": []string{"exp"}},
		"no kid":    {"kid": nil},
		"other kid": {"kid": "nope"},
	} {
		if _, err := s.Verify(t.Context(), sign(t, s, base(), h)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	// Each failure says which check failed.
	for check, tok := range map[string]string{
		"type":            sign(t, s, base(), map[string]any{"typ": nil}),
		"critical header": sign(t, s, base(), map[string]any{"crit": []string{"exp"}}),
		"unknown key":     sign(t, s, base(), map[string]any{"kid": "nope"}),
		"malformed":       "not.a.token",
		"lifetime":        sign(t, s, func() jwt.MapClaims { c := base(); c["exp"] = now + 86401; return c }()),
	} {
		_, err := s.Verify(t.Context(), tok)
		var ite *InvalidTokenError
		if !errors.As(err, &ite) || ite.Check != check {
			t.Errorf("%s: %v", check, err)
		}
	}
	// Within the 30 s leeway: still valid.
	c := base()
	c["exp"], c["nbf"] = now-20, now+20
	if _, err := s.Verify(t.Context(), sign(t, s, c)); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestRotationKeepsTokensValid(t *testing.T) {
	s, clk, again := newService(t)
	ctx := t.Context()
	first, err := s.Mint(ctx, MintInput{CustomerID: cust, Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	oldKid := mustKid(t, first.AccessToken)
	// An hour before rotation, a day-long token is signed with the old key.
	clk.Add(RotateEvery - time.Hour)
	late, err := s.Mint(ctx, MintInput{CustomerID: cust, Subject: "u", TTLSeconds: ttlOf(MaxTTL)})
	if err != nil {
		t.Fatal(err)
	}
	if mustKid(t, late.AccessToken) != oldKid {
		t.Fatal("rotated early")
	}
	// Past 30 days, minting rotates to a new key...
	clk.Add(time.Hour + time.Second)
	fresh, err := s.Mint(ctx, MintInput{CustomerID: cust, Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	newKid := mustKid(t, fresh.AccessToken)
	if newKid == oldKid {
		t.Fatal("no rotation after 30 days")
	}
	// ...and the old key stays published and trusted while its tokens live,
	// here and in a restarted instance.
	jwks, err := s.JWKS(ctx)
	if err != nil || len(jwks) != 2 || jwks[0].Kid != newKid || jwks[1].Kid != oldKid {
		t.Fatalf("jwks after rotation: %+v %v", jwks, err)
	}
	other := again()
	for _, tok := range []string{late.AccessToken, fresh.AccessToken} {
		if _, err := s.Verify(ctx, tok); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		if _, err := other.Verify(ctx, tok); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	}
	// Once every token of the old key has expired, the key leaves the JWKS.
	clk.Add(MaxTTL + Leeway + time.Minute)
	jwks, _ = other.JWKS(ctx)
	for _, k := range jwks {
		if k.Kid == oldKid {
			t.Fatal("a retired key outlived its tokens in the JWKS")
		}
	}
	if _, err := other.Verify(ctx, late.AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func mustKid(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Header["kid"].(string)
}

func TestStoredKeyIsWrapped(t *testing.T) {
	s, _, _ := newService(t)
	k, err := s.current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var doc keyDoc
	if err := s.coll.FindOne(t.Context(), map[string]any{"_id": k.id}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc.Wrapped), string(k.priv.Seed())) || len(doc.Wrapped) < 100 {
		t.Fatal("the signing key is not wrapped")
	}
}

func FuzzVerify(f *testing.F) {
	s, clk, _ := newService(f)
	good, err := s.Mint(context.Background(), MintInput{CustomerID: cust, Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.AccessToken)
	f.Add("a.b.c")
	f.Add("")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := s.Verify(context.Background(), raw)
		if err == nil && raw != good.AccessToken {
			// Only the real token (JSON re-encodings aside) may verify.
			if c.CustomerID != cust {
				t.Fatalf("a forged token verified: %q", raw)
			}
		}
		_ = clk
	})
}

// ttlOf is a MintInput lifetime.
func ttlOf(d time.Duration) *int {
	n := int(d / time.Second)
	return &n
}
