package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard/switchboard/tokens"
)

// activeCustomer registers and activates a customer of partner key and
// mints a token with the given scopes (nil: all).
func (a *testAPI) activeCustomer(t *testing.T, key, space string, scopes ...string) (id, token string) {
	t.Helper()
	r := a.do(t, req{method: "POST", path: "/v1/customers", key: key,
		body: fmt.Sprintf(`{"space":%q,"industryId":%q,"label":"Label %s"}`, space, testIndustry, space)})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	id = r.Body["id"].(string)
	if r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/activate", key: key, body: `{}`}); r.Status != 200 {
		t.Fatalf("activate: %d %s", r.Status, r.Raw)
	}
	return id, a.mint(t, key, id, scopes...)
}

func (a *testAPI) mint(t *testing.T, key, id string, scopes ...string) string {
	t.Helper()
	body := `{"subject":"app-user-1"}`
	if scopes != nil {
		b, _ := json.Marshal(scopes)
		body = fmt.Sprintf(`{"subject":"app-user-1","scopes":%s,"ttlSeconds":600}`, b)
	}
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/tokens", key: key, body: body})
	if r.Status != 201 || r.Body["tokenType"] != "Bearer" || r.Body["accessToken"] == "" {
		t.Fatalf("mint: %d %s", r.Status, r.Raw)
	}
	return r.Body["accessToken"].(string)
}

func TestTokenMinting(t *testing.T) {
	a := newTestAPI(t)
	reg := a.register(t, "minting")["id"].(string)
	a.do(t, req{method: "POST", path: "/v1/customers/" + reg + "/tokens", key: a.key, body: `{"subject":"u"}`}).problem(t, 409, "customer_not_active")
	a.activate(t, reg)
	for body, field := range map[string]string{
		`{"subject":""}`:                                 "subject",
		`{"subject":"u","ttlSeconds":59}`:                "ttlSeconds",
		`{"subject":"u","ttlSeconds":86401}`:             "ttlSeconds",
		`{"subject":"u","scopes":["admin"]}`:             "scopes[0]",
		`{"subject":"` + strings.Repeat("s", 201) + `"}`: "subject",
	} {
		r := a.do(t, req{method: "POST", path: "/v1/customers/" + reg + "/tokens", key: a.key, body: body, invalid: true})
		r.problem(t, 422, "validation_failed")
		r.field(t, field)
	}
	a.do(t, req{method: "POST", path: "/v1/customers/" + reg + "/tokens", key: a.other, body: `{"subject":"u"}`}).problem(t, 404, "not_found")
	r := a.do(t, req{method: "POST", path: "/v1/customers/" + reg + "/tokens", key: a.key, body: `{"subject":"u","ttlSeconds":120}`})
	if r.Status != 201 || r.Body["expiresIn"] != float64(120) {
		t.Fatalf("mint: %s", r.Raw)
	}
	// The token's claims, as API.md lists them.
	parts := strings.Split(r.Body["accessToken"].(string), ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var h, c map[string]any
	json.Unmarshal(hdr, &h)
	json.Unmarshal(payload, &c)
	if h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
	for _, k := range []string{"iss", "aud", "sub", "tid", "scope", "iat", "nbf", "exp", "jti"} {
		if _, ok := c[k]; !ok {
			t.Fatalf("claims lack %s: %v", k, c)
		}
	}
	if c["tid"] != reg || c["iss"] != testIssuer || c["scope"] != "contacts:read contacts:write messages:read messages:send webhooks:read webhooks:write" {
		t.Fatalf("claims %v", c)
	}
	jwks := a.do(t, req{method: "GET", path: "/.well-known/jwks.json"})
	keys := jwks.Body["keys"].([]any)
	if len(keys) == 0 || keys[0].(map[string]any)["kid"] != h["kid"] {
		t.Fatalf("jwks %s", jwks.Raw)
	}
}

func TestTokenAttacks(t *testing.T) {
	a := newTestAPI(t)
	_, good := a.activeCustomer(t, a.key, "attacked")
	get := func(tok string) response {
		return a.do(t, req{method: "GET", path: "/v1/contacts", key: tok, invalid: true})
	}
	if r := get(good); r.Status != 200 {
		t.Fatalf("good token: %d %s", r.Status, r.Raw)
	}
	parts := strings.Split(good, ".")
	var claims map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(payload, &claims)
	var hdr map[string]any
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(h, &hdr)
	kid := hdr["kid"].(string)
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }

	// HS256 "signed" with the public key's bytes (algorithm confusion).
	jwks := a.do(t, req{method: "GET", path: "/.well-known/jwks.json"})
	x, _ := base64.RawURLEncoding.DecodeString(jwks.Body["keys"].([]any)[0].(map[string]any)["x"].(string))
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	hs.Header["kid"], hs.Header["typ"] = kid, tokens.TokenType
	hsToken, _ := hs.SignedString(x)
	// Signed by a key nobody published.
	_, rogue, _ := ed25519.GenerateKey(rand.Reader)
	unknown := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims))
	unknown.Header["kid"], unknown.Header["typ"] = "not-a-kid", tokens.TokenType
	unknownToken, _ := unknown.SignedString(rogue)
	sameKid := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims))
	sameKid.Header["kid"], sameKid.Header["typ"] = kid, tokens.TokenType
	forgedToken, _ := sameKid.SignedString(rogue)
	// Payload edited after signing: more scopes, another tenant.
	edited := map[string]any{}
	for k, v := range claims {
		edited[k] = v
	}
	edited["tid"] = "0193a0c4-ffff-7000-8000-000000000000"
	// Minted by a service of another issuer.
	otherIss := tokens.NewService(tokens.Config{Keys: a.db.Control.Collection("signing_keys"), Master: a.master,
		Issuer: "http://evil.test", Status: a.svc.Status})
	wrongIss, err := otherIss.Mint(t.Context(), tokens.MintInput{CustomerID: claims["tid"].(string), Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Minted in the past (expired) and in the future (not yet valid), beyond the 30 s leeway.
	past := tokens.NewService(tokens.Config{Keys: a.db.Control.Collection("signing_keys"), Master: a.master,
		Issuer: testIssuer, Status: a.svc.Status, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	expired, err := past.Mint(t.Context(), tokens.MintInput{CustomerID: claims["tid"].(string), Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	future := tokens.NewService(tokens.Config{Keys: a.db.Control.Collection("signing_keys"), Master: a.master,
		Issuer: testIssuer, Status: a.svc.Status, Now: func() time.Time { return time.Now().Add(10 * time.Minute) }})
	early, err := future.Mint(t.Context(), tokens.MintInput{CustomerID: claims["tid"].(string), Subject: "u", TTLSeconds: ttlOf(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	attacks := map[string]string{
		"alg none":         enc(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".",
		"HS256 public key": hsToken,
		"unknown kid":      unknownToken,
		"forged signature": forgedToken,
		"edited payload":   parts[0] + "." + enc(edited) + "." + parts[2],
		"wrong issuer":     wrongIss.AccessToken,
		"expired":          expired.AccessToken,
		"not yet valid":    early.AccessToken,
		"garbage":          "not.a.token",
		"empty":            "",
		"truncated":        good[:len(good)-5],
	}
	// Which check each fails, as the detail says (never echoing the token).
	checks := map[string]string{
		"alg none": "signature", "HS256 public key": "signature", "unknown kid": "unknown key", "forged signature": "signature",
		"edited payload": "signature", "wrong issuer": "issuer", "expired": "expired", "not yet valid": "not yet valid",
		"garbage": "malformed", "empty": "malformed", "truncated": "malformed",
	}
	for name, tok := range attacks {
		t.Run(name, func(t *testing.T) {
			r := get(tok)
			r.problem(t, 401, "unauthorized")
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), `Bearer realm="switchboard", error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			detail, _ := r.Body["detail"].(string)
			if !strings.Contains(detail, "the "+checks[name]+" check") || (len(tok) > 8 && strings.Contains(detail, tok[:8])) {
				t.Fatalf("detail %q, want the %s check named and no token", detail, checks[name])
			}
		})
	}
	// A partner API key is not a tenant token, and a tenant token is not a partner key.
	get(a.key).problem(t, 401, "unauthorized")
	a.do(t, req{method: "GET", path: "/v1/customers", key: good, invalid: true}).problem(t, 401, "unauthorized")
}

// TestDeactivationRefusesTokens: the instance that deactivates refuses the
// customer's tokens on the very next request; another instance (its own
// status cache) within 5 s.
func TestDeactivationRefusesTokens(t *testing.T) {
	a := newTestAPI(t)
	id, tok := a.activeCustomer(t, a.key, "toggled")
	get := func() response { return a.do(t, req{method: "GET", path: "/v1/contacts", key: tok, invalid: true}) }
	if r := get(); r.Status != 200 {
		t.Fatalf("active: %d", r.Status)
	}
	other := tokens.NewService(tokens.Config{Keys: a.db.Control.Collection("signing_keys"), Master: a.master,
		Issuer: testIssuer, Status: a.svc.Status, Now: a.clock.Now})
	if _, err := other.Verify(t.Context(), tok); err != nil {
		t.Fatalf("another instance, active: %v", err)
	}
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key, body: `{}`})
	get().problem(t, 403, "customer_not_active")
	if _, err := other.Verify(t.Context(), tok); err != nil {
		t.Fatalf("another instance within its 5 s: %v", err)
	}
	a.clock.Add(5 * time.Second)
	if _, err := other.Verify(t.Context(), tok); !errors.Is(err, tokens.ErrRefusedNotActive) {
		t.Fatalf("another instance after 5 s: %v", err)
	}
	a.activate(t, id)
	if r := get(); r.Status != 200 {
		t.Fatalf("re-activated: %d %s", r.Status, r.Raw)
	}
	// Terminated with NO_RETENTION: shredded, so 410 at once.
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
		body: `{"retention":{"strategy":"NO_RETENTION"}}`})
	get().problem(t, 410, "data_shredded")
}

func TestScopes(t *testing.T) {
	a := newTestAPI(t)
	id, readOnly := a.activeCustomer(t, a.key, "scoped", tokens.ContactsRead)
	writeOnly := a.mint(t, a.key, id, tokens.ContactsWrite)
	messagesOnly := a.mint(t, a.key, id, tokens.MessagesRead, tokens.MessagesSend)
	upsert := `{"mode":"Add","matchBy":"email","data":[{"email":"a@example.com"}]}`
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: readOnly, body: upsert})
	r.problem(t, 403, "forbidden")
	if !strings.Contains(r.Body["detail"].(string), "contacts:write") {
		t.Fatalf("403 does not name the scope: %s", r.Raw)
	}
	if r := a.do(t, req{method: "POST", path: "/v1/contacts", key: writeOnly, body: upsert}); r.Status != 200 {
		t.Fatalf("write scope: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/contacts", key: writeOnly}).problem(t, 403, "forbidden")
	if r := a.do(t, req{method: "GET", path: "/v1/contacts", key: readOnly}); r.Status != 200 || len(r.Body["items"].([]any)) != 1 {
		t.Fatalf("read scope: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/contacts", key: messagesOnly}).problem(t, 403, "forbidden")
	a.do(t, req{method: "DELETE", path: "/v1/contacts/x", key: readOnly}).problem(t, 403, "forbidden")
}

func contactOf(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	return r.Body
}

func TestContacts(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "contacts")
	post := func(body string) response {
		return a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: body})
	}
	outcomes := func(r response) string {
		if r.Status != 200 {
			t.Fatalf("upsert: %d %s", r.Status, r.Raw)
		}
		var parts []string
		for _, it := range r.Body["results"].([]any) {
			m := it.(map[string]any)
			s := m["outcome"].(string)
			if c, ok := m["code"]; ok {
				s += ":" + c.(string)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ",")
	}

	r := post(`{"mode":"Add","matchBy":"email","data":[
		{"email":"  Ann@Example.COM ","firstName":"Ann","lastName":"O'Neil","phone":"+1 (415) 555-0100","crmId":"crm-1",
		 "externalId":"ext-1","dateOfBirth":"1990-02-03","gender":"Female","country":"us",
		 "channels":[{"type":"sms","address":"+1 415 555 0100"},{"type":"email","address":"ANN@work.example"}],
		 "customAttributes":[{"name":"tier","value":"gold"}],
		 "consents":[{"topic":"marketing.sms","value":"True","source":"signup-form"}]},
		{"email":"bob@example.com","firstName":"Bob"}]}`)
	if got := outcomes(r); got != "created,created" {
		t.Fatalf("add: %s", got)
	}
	annID := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	if got := outcomes(post(`{"mode":"Add","matchBy":"email","data":[{"email":"ann@example.com"}]}`)); got != "failed:duplicate" {
		t.Fatalf("add existing: %s", got)
	}
	if got := outcomes(post(`{"mode":"Update","matchBy":"email","data":[{"email":"nobody@example.com"}]}`)); got != "failed:not_found" {
		t.Fatalf("update missing: %s", got)
	}
	if got := outcomes(post(`{"mode":"AddOrUpdate","matchBy":"crmId","data":[{"crmId":"crm-1","lastName":"Smith"},{"crmId":"crm-9","email":"cy@example.com"}]}`)); got != "updated,created" {
		t.Fatalf("add or update: %s", got)
	}
	// Taking Bob's email is a conflict.
	if got := outcomes(post(`{"mode":"Update","matchBy":"crmId","data":[{"crmId":"crm-1","email":"bob@example.com"}]}`)); got != "failed:conflict" {
		t.Fatalf("conflict: %s", got)
	}

	ann := contactOf(t, a.do(t, req{method: "GET", path: "/v1/contacts/" + annID, key: tok}))
	want := map[string]any{"email": "ann@example.com", "phone": "+14155550100", "firstName": "Ann", "lastName": "Smith",
		"crmId": "crm-1", "externalId": "ext-1", "dateOfBirth": "1990-02-03", "gender": "Female", "country": "US",
		"version": float64(2), "anonymized": false}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("%s = %v, want %v", k, ann[k], v)
		}
	}
	if ch := ann["channels"].([]any); len(ch) != 2 || ch[1].(map[string]any)["address"] != "ann@work.example" {
		t.Errorf("channels %v", ch)
	}
	cons := ann["consents"].([]any)
	if len(cons) != 1 || cons[0].(map[string]any)["source"] != "signup-form" || cons[0].(map[string]any)["updatedAt"] == nil {
		t.Errorf("consents %v", cons)
	}

	// Every lookup kind, with input normalised first.
	for q, n := range map[string]int{
		"email=%20%20Ann@Example.COM%20": 1, "phone=%2B1%20(415)%20555-0100": 1, "crmId=crm-1": 1, "externalId=ext-1": 1,
		"channel=ann@WORK.example": 1, "channel=%2B14155550100": 1, "email=nobody@example.com": 0, "email=not-an-email": 0,
	} {
		r := a.do(t, req{method: "GET", path: "/v1/contacts?" + q, key: tok})
		items := r.Body["items"].([]any)
		if r.Status != 200 || len(items) != n || (n == 1 && items[0].(map[string]any)["id"] != annID) {
			t.Errorf("lookup %s: %d %s", q, r.Status, r.Raw)
		}
	}
	a.do(t, req{method: "GET", path: "/v1/contacts?email=a@b.c&phone=1", key: tok, invalid: true}).problem(t, 422, "validation_failed")

	// PATCH: merge, null clears, stale version 409.
	r = a.do(t, req{method: "PATCH", path: "/v1/contacts/" + annID, key: tok, body: `{"expectedVersion":2,"firstName":"Annie","gender":null}`})
	p := contactOf(t, r)
	if p["firstName"] != "Annie" || p["gender"] != nil || p["lastName"] != "Smith" || p["version"] != float64(3) {
		t.Fatalf("patch: %s", r.Raw)
	}
	r = a.do(t, req{method: "PATCH", path: "/v1/contacts/" + annID, key: tok, body: `{"expectedVersion":2,"firstName":"X"}`})
	r.problem(t, 409, "version_conflict")
	a.do(t, req{method: "PATCH", path: "/v1/contacts/" + annID, key: tok, body: `{"email":"bob@example.com"}`}).problem(t, 409, "conflict")
	r = a.do(t, req{method: "PATCH", path: "/v1/contacts/" + annID, key: tok, body: `{"firstName":"R2-D2!"}`, invalid: true})
	r.problem(t, 422, "validation_failed")
	r.field(t, "firstName")

	// External event, then the timeline newest first.
	r = a.do(t, req{method: "POST", path: "/v1/contacts/" + annID + "/events", key: tok,
		body: `{"type":"order.shipped","message":"Order 42 shipped to Ann","sourceUrl":"https://shop.example/o/42","initiatedBy":"shop","occurredAt":"2026-01-02T03:04:05.678Z"}`})
	if r.Status != 201 || r.Body["at"] != "2026-01-02T03:04:05.678Z" || r.Body["eventType"] != "order.shipped" || r.Body["type"] != "event.external" {
		t.Fatalf("event: %d %s", r.Status, r.Raw)
	}
	tl := a.do(t, req{method: "GET", path: "/v1/contacts/" + annID + "/timeline", key: tok})
	var types []string
	for _, it := range tl.Body["items"].([]any) {
		types = append(types, it.(map[string]any)["type"].(string))
	}
	if strings.Join(types, ",") != "contact.updated,contact.updated,contact.created,consent.changed,event.external" &&
		strings.Join(types, ",") != "contact.updated,contact.updated,consent.changed,contact.created,event.external" {
		t.Fatalf("timeline: %v", types)
	}

	// Cursor pagination, newest first.
	var paged []string
	cursor := ""
	for range 10 {
		q := "/v1/contacts?limit=1"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := a.do(t, req{method: "GET", path: q, key: tok})
		for _, it := range r.Body["items"].([]any) {
			paged = append(paged, it.(map[string]any)["id"].(string))
		}
		next, _ := r.Body["nextCursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(paged) != 3 || paged[2] != annID {
		t.Fatalf("paged through %v", paged)
	}
	tlPage := a.do(t, req{method: "GET", path: "/v1/contacts/" + annID + "/timeline?limit=2", key: tok})
	if len(tlPage.Body["items"].([]any)) != 2 || tlPage.Body["nextCursor"] == nil {
		t.Fatalf("timeline page: %s", tlPage.Raw)
	}
	rest := a.do(t, req{method: "GET", path: "/v1/contacts/" + annID + "/timeline?limit=200&cursor=" + tlPage.Body["nextCursor"].(string), key: tok})
	if n := len(rest.Body["items"].([]any)); n != 3 {
		t.Fatalf("timeline second page has %d items, want 3: %s", n, rest.Raw)
	}

	// Anonymize, exactly as API.md says.
	r = a.do(t, req{method: "DELETE", path: "/v1/contacts/" + annID + "?anonymize=true", key: tok})
	an := contactOf(t, r)
	wantAnon := map[string]any{"firstName": "XXX", "lastName": "XXX", "email": "anonymized-" + annID + "@example.invalid",
		"phone": nil, "crmId": nil, "externalId": nil, "dateOfBirth": nil, "gender": nil, "country": "US",
		"anonymized": true, "version": float64(4)}
	for k, v := range wantAnon {
		if an[k] != v {
			t.Errorf("anonymized %s = %v, want %v", k, an[k], v)
		}
	}
	if len(an["channels"].([]any)) != 0 || an["customAttributes"].([]any)[0].(map[string]any)["value"] != "XXX" ||
		an["customAttributes"].([]any)[0].(map[string]any)["name"] != "tier" || len(an["consents"].([]any)) != 1 {
		t.Errorf("anonymized lists: %s", r.Raw)
	}
	for _, q := range []string{"email=ann@example.com", "phone=%2B14155550100", "crmId=crm-1", "externalId=ext-1", "channel=ann@work.example"} {
		if r := a.do(t, req{method: "GET", path: "/v1/contacts?" + q, key: tok}); len(r.Body["items"].([]any)) != 0 {
			t.Errorf("%s still finds the anonymized contact", q)
		}
	}
	tl = a.do(t, req{method: "GET", path: "/v1/contacts/" + annID + "/timeline", key: tok})
	for _, it := range tl.Body["items"].([]any) {
		m := it.(map[string]any)
		if m["type"] == "event.external" && (m["message"] != nil || m["sourceUrl"] != nil || m["initiatedBy"] != nil || m["eventType"] != "order.shipped") {
			t.Errorf("event not erased: %v", m)
		}
	}
	if strings.Contains(string(tl.Raw), "Order 42") {
		t.Error("timeline still holds the message")
	}
	if types := tl.Body["items"].([]any); types[0].(map[string]any)["type"] != "contact.anonymized" {
		t.Errorf("first item %v", types[0])
	}

	// Hard delete.
	bob := a.do(t, req{method: "GET", path: "/v1/contacts?email=bob@example.com", key: tok}).Body["items"].([]any)[0].(map[string]any)["id"].(string)
	r = a.do(t, req{method: "DELETE", path: "/v1/contacts/" + bob, key: tok})
	if r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	a.do(t, req{method: "GET", path: "/v1/contacts/" + bob, key: tok}).problem(t, 404, "not_found")
	if got := outcomes(post(`{"mode":"Add","matchBy":"email","data":[{"email":"bob@example.com"}]}`)); got != "created" {
		t.Fatalf("re-adding a deleted contact's email: %s", got)
	}
}

func TestUpsertValidationWritesNothing(t *testing.T) {
	a := newTestAPI(t)
	_, tok := a.activeCustomer(t, a.key, "strict")
	cases := map[string]string{
		`{"mode":"Add","matchBy":"email","data":[{"email":"ok@example.com"},{"email":"nope"}]}`:                              "data[1].email",
		`{"mode":"Add","matchBy":"email","data":[{"email":"a@example.com"},{"email":" A@example.com"}]}`:                     "data[1].email",
		`{"mode":"Add","matchBy":"email","data":[{"email":"ok@example.com"},{"firstName":"No Key"}]}`:                        "data[1].email",
		`{"mode":"Add","matchBy":"email","data":[]}`:                                                                         "data",
		`{"mode":"Add","matchBy":"email","data":[{"email":"x@example.com","phone":"4155550100"}]}`:                           "data[0].phone",
		`{"mode":"Add","matchBy":"email","data":[{"email":"x@example.com","dateOfBirth":"2999-01-01"}]}`:                     "data[0].dateOfBirth",
		`{"mode":"Add","matchBy":"email","data":[{"email":"x@example.com","customAttributes":[{"name":"a b","value":""}]}]}`: "data[0].customAttributes[0].name",
		`{"mode":"Sometimes","matchBy":"email","data":[{"email":"x@example.com"}]}`:                                          "mode",
		`{"mode":"Add","matchBy":"name","data":[{"email":"x@example.com"}]}`:                                                 "matchBy",
	}
	for body, field := range cases {
		r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: body, invalid: true})
		r.problem(t, 422, "validation_failed")
		r.field(t, field)
	}
	var items []string
	for i := range 1001 {
		items = append(items, fmt.Sprintf(`{"email":"u%d@example.com"}`, i))
	}
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[` + strings.Join(items, ",") + `]}`, invalid: true})
	r.problem(t, 422, "validation_failed")
	r.field(t, "data")
	r = a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"x@example.com","nickname":"x"}]}`, invalid: true})
	r.problem(t, 400, "malformed_request")
	r.field(t, "data[0].nickname")
	if r := a.do(t, req{method: "GET", path: "/v1/contacts", key: tok}); len(r.Body["items"].([]any)) != 0 {
		t.Fatalf("an invalid batch wrote %s", r.Raw)
	}
	// A national number parses with a country.
	r = a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"(415) 555-0199","country":"US"}]}`})
	if r.Status != 200 || r.Body["results"].([]any)[0].(map[string]any)["outcome"] != "created" {
		t.Fatalf("national number: %s", r.Raw)
	}
}

func TestCrossTenantIsolation(t *testing.T) {
	a := newTestAPI(t)
	_, tokA := a.activeCustomer(t, a.key, "tenant-a")
	_, tokB := a.activeCustomer(t, a.key, "tenant-b")
	r := a.do(t, req{method: "POST", path: "/v1/contacts", key: tokA, body: `{"mode":"Add","matchBy":"email","data":[{"email":"secret@a.example","crmId":"A-1","phone":"+14155550111"}]}`})
	id := r.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	a.do(t, req{method: "GET", path: "/v1/contacts/" + id, key: tokB}).problem(t, 404, "not_found")
	a.do(t, req{method: "PATCH", path: "/v1/contacts/" + id, key: tokB, body: `{"firstName":"Eve"}`}).problem(t, 404, "not_found")
	a.do(t, req{method: "DELETE", path: "/v1/contacts/" + id, key: tokB}).problem(t, 404, "not_found")
	a.do(t, req{method: "DELETE", path: "/v1/contacts/" + id + "?anonymize=true", key: tokB}).problem(t, 404, "not_found")
	a.do(t, req{method: "GET", path: "/v1/contacts/" + id + "/timeline", key: tokB}).problem(t, 404, "not_found")
	a.do(t, req{method: "POST", path: "/v1/contacts/" + id + "/events", key: tokB, body: `{"type":"x","message":"y"}`}).problem(t, 404, "not_found")
	for _, q := range []string{"email=secret@a.example", "crmId=A-1", "phone=%2B14155550111", "channel=secret@a.example"} {
		if r := a.do(t, req{method: "GET", path: "/v1/contacts?" + q, key: tokB}); r.Status != 200 || len(r.Body["items"].([]any)) != 0 {
			t.Errorf("B's lookup %s: %s", q, r.Raw)
		}
	}
	if r := a.do(t, req{method: "GET", path: "/v1/contacts", key: tokB}); len(r.Body["items"].([]any)) != 0 {
		t.Error("B lists A's contacts")
	}
	// B's Update of A's match key does not reach A's contact.
	r = a.do(t, req{method: "POST", path: "/v1/contacts", key: tokB, body: `{"mode":"Update","matchBy":"email","data":[{"email":"secret@a.example","firstName":"Eve"}]}`})
	if r.Body["results"].([]any)[0].(map[string]any)["code"] != "not_found" {
		t.Fatalf("B updated A's contact: %s", r.Raw)
	}
	if got := a.do(t, req{method: "GET", path: "/v1/contacts/" + id, key: tokA}); got.Body["firstName"] != nil {
		t.Fatal("A's contact changed")
	}
}

func TestContactIdempotencyAndShredding(t *testing.T) {
	a := newTestAPI(t)
	id, tok := a.activeCustomer(t, a.key, "shredme")
	body := `{"mode":"Add","matchBy":"email","data":[{"email":"once@example.com"}]}`
	hdr := map[string]string{"Idempotency-Key": "batch-1"}
	first := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: body, header: hdr})
	again := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: body, header: hdr})
	if again.Header.Get("Idempotent-Replayed") != "true" || string(again.Raw) != string(first.Raw) {
		t.Fatalf("replay: %s vs %s", again.Raw, first.Raw)
	}
	if r := a.do(t, req{method: "GET", path: "/v1/contacts", key: tok}); len(r.Body["items"].([]any)) != 1 {
		t.Fatal("the replay wrote again")
	}
	// The same key and body on another contact's events route is another
	// request, not a replay.
	ids := first.Body["results"].([]any)
	cid := ids[0].(map[string]any)["id"].(string)
	r2 := a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[{"email":"twice@example.com"}]}`})
	cid2 := r2.Body["results"].([]any)[0].(map[string]any)["id"].(string)
	evHdr := map[string]string{"Idempotency-Key": "event-1"}
	e1 := a.do(t, req{method: "POST", path: "/v1/contacts/" + cid + "/events", key: tok, body: `{"type":"t","message":"m"}`, header: evHdr})
	e2 := a.do(t, req{method: "POST", path: "/v1/contacts/" + cid2 + "/events", key: tok, body: `{"type":"t","message":"m"}`, header: evHdr})
	if e1.Status != 201 || e2.Status == 201 && e2.Header.Get("Idempotent-Replayed") == "true" {
		t.Fatalf("same key on two contacts: %d %s / %d replayed=%q", e1.Status, e1.Raw, e2.Status, e2.Header.Get("Idempotent-Replayed"))
	}
	e2.problem(t, 422, "idempotency_key_reused")

	r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key, body: `{"retention":{"strategy":"NO_RETENTION"}}`})
	if r.Body["status"] != "SHREDDED" {
		t.Fatalf("terminate: %s", r.Raw)
	}
	// SHREDDED: 410, as API.md says, at once on this instance.
	a.do(t, req{method: "GET", path: "/v1/contacts", key: tok, invalid: true}).problem(t, 410, "data_shredded")
	if n, err := a.db.CountCustomerData(t.Context(), id); err != nil || n != 0 {
		t.Fatalf("the shredded customer still has %d documents (%v)", n, err)
	}
}

// ttlOf is a tokens.MintInput lifetime.
func ttlOf(d time.Duration) *int {
	n := int(d / time.Second)
	return &n
}
