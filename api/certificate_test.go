package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/tenants"
)

// verifyJWS checks a compact JWS against a JWK Set by hand (base64url,
// Ed25519 over "header.payload"), independent of the library that signed
// it, and returns its header and claims.
func verifyJWS(t *testing.T, jws string, jwks map[string]any) (map[string]any, map[string]any, bool) {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jws)
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("part %d is not base64url JSON", i)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range jwks["keys"].([]any) {
		k := k.(map[string]any)
		if k["kid"] != header["kid"] {
			continue
		}
		pub, err := base64.RawURLEncoding.DecodeString(k["x"].(string))
		if err != nil || k["kty"] != "OKP" || k["crv"] != "Ed25519" {
			t.Fatalf("key %v", k)
		}
		return header, claims, ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig)
	}
	return header, claims, false
}

// TestErasureCertificate: 409 not_shredded before; after a NO_RETENTION
// terminate a certificate that verifies against erasure-keys.json with an
// independent check, names no personal data, and whose claims match the
// tombstone and the events; one changed claim does not verify.
func TestErasureCertificate(t *testing.T) {
	a := newTestAPI(t)
	id, tok := a.activeCustomer(t, a.key, "certified")
	a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"ann@example.com"},{"email":"bob@example.com"}]}`})
	held, err := a.db.CountCustomerData(t.Context(), id)
	if err != nil || held < 2 {
		t.Fatalf("the customer holds %d documents (%v)", held, err)
	}
	path := "/v1/customers/" + id + "/erasure-certificate"
	a.do(t, req{method: "GET", path: path, key: a.key}).problem(t, 409, "not_shredded")

	var key struct {
		KeyID       string `bson:"keyId"`
		MasterKeyID string `bson:"masterKeyId"`
	}
	if err := a.db.Keys.Collection("customer_keys").FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&key); err != nil {
		t.Fatal(err)
	}
	gone := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key, body: `{"retention":{"strategy":"NO_RETENTION"}}`})
	wantCustomer(t, gone.Body, "SHREDDED", 4)

	r := a.do(t, req{method: "GET", path: path, key: a.key})
	if r.Status != 200 {
		t.Fatalf("certificate: %d %s", r.Status, r.Raw)
	}
	cert := r.Body["certificate"].(string)
	jwks := a.do(t, req{method: "GET", path: "/.well-known/erasure-keys.json"}).Body
	header, claims, ok := verifyJWS(t, cert, jwks)
	if !ok || header["alg"] != "EdDSA" || header["typ"] != "erasure-certificate+jwt" {
		t.Fatalf("certificate does not verify: header %v", header)
	}
	// The answer's claims are the signed ones.
	answered, _ := json.Marshal(r.Body["claims"])
	signed, _ := json.Marshal(claims)
	if string(answered) != string(signed) {
		t.Fatalf("answered claims %s differ from the signed ones %s", answered, signed)
	}
	want := map[string]any{
		"iss": testIssuer, "sub": id, "partnerId": gone.Body["partnerId"], "space": "certified",
		"method": "cryptographic-erase", "keyId": key.KeyID, "masterKeyId": key.MasterKeyID,
		"cipher": "XChaCha20-Poly1305, HKDF-SHA256 subkeys", "terminatedAt": gone.Body["terminatedAt"],
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if v := claims["verification"].(map[string]any); v["method"] != tenants.VerificationCanary {
		t.Errorf("verification %v", v)
	}
	if tw := claims["twilio"].(map[string]any); tw["status"] != "closed" || tw["accountSid"] != gone.Body["twilio"].(map[string]any)["accountSid"] {
		t.Errorf("twilio %v", tw)
	}
	if claims["documentsDeleted"] != float64(held) {
		t.Errorf("documentsDeleted = %v, want %d", claims["documentsDeleted"], held)
	}
	if _, old := claims["databaseDroppedAt"]; old {
		t.Error("a new certificate carries databaseDroppedAt")
	}
	for _, k := range []string{"keyDestroyedAt", "dataDeletedAt"} {
		at, err := time.Parse(time.RFC3339, claims[k].(string))
		if err != nil || at.Before(time.Now().Add(-time.Minute)) {
			t.Errorf("%s = %v", k, claims[k])
		}
	}
	if strings.Contains(string(signed), "Label certified") || strings.Contains(string(signed), "label") {
		t.Fatalf("the certificate names personal data: %s", signed)
	}
	// A token-key rotation changes nothing for certificates: their keys are
	// their own.
	a.clock.Add(31 * 24 * time.Hour)
	if err := a.tokens.EnsureKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := verifyJWS(t, cert, a.do(t, req{method: "GET", path: "/.well-known/erasure-keys.json"}).Body); !ok {
		t.Fatal("the certificate does not verify after a token-key rotation")
	}
	// One claim changed: no longer verifies.
	parts := strings.Split(cert, ".")
	claims["space"] = "someone-else"
	forged, _ := json.Marshal(claims)
	if _, _, ok := verifyJWS(t, parts[0]+"."+base64.RawURLEncoding.EncodeToString(forged)+"."+parts[2], jwks); ok {
		t.Fatal("a certificate with a changed claim verifies")
	}
	// The events agree: one shredded event at the tombstone's version.
	ev := a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events", key: a.key})
	items := ev.Body["items"].([]any)
	if last := items[len(items)-1].(map[string]any); last["type"] != "customer.shredded" || last["version"] != float64(4) {
		t.Fatalf("events: %s", ev.Raw)
	}
	// Another partner sees nothing.
	a.do(t, req{method: "GET", path: path, key: a.other}).problem(t, 404, "not_found")
}
