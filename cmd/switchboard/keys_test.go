package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

// TestKeysRewrap: master key rotation end to end. Keys made under identity
// A are re-wrapped under B (listed first, A still present), after which a
// key file holding B alone reads everything, and A alone reads nothing.
func TestKeysRewrap(t *testing.T) {
	dir := t.TempDir()
	idA, _ := age.GenerateX25519Identity()
	idB, _ := age.GenerateX25519Identity()
	keyFile := func(name string, ids ...*age.X25519Identity) string {
		var b bytes.Buffer
		for _, id := range ids {
			b.WriteString(id.String() + "\n")
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data := filepath.Join(dir, "data")
	open := func(file string) *app {
		a, err := openApp(context.Background(), config{DataDir: data, MasterKeyFile: file, PublicURL: "http://x"}, storetest.Logger())
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	a := open(keyFile("a.agekey", idA))
	p, _, err := a.Tenants.CreatePartner(t.Context(), "P")
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Tenants.Register(t.Context(), p, tenants.RegisterInput{Space: "rotated", IndustryID: tenants.Industries()[0].ID, Label: "Rotated Label"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Tokens.EnsureKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A shredded customer: its certificate is signed with the erasure key,
	// wrapped (like the rest) under A.
	gone, err := a.Tenants.Register(t.Context(), p, tenants.RegisterInput{Space: "gone", IndustryID: tenants.Industries()[0].ID, Label: "Gone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tenants.Terminate(t.Context(), p, gone.ID, tenants.AnyVersion, tenants.RetentionInput{Strategy: "NO_RETENTION"}); err != nil {
		t.Fatal(err)
	}
	a.close(context.Background())

	var stdout, stderr bytes.Buffer
	e := env{"SWITCHBOARD_DATA_DIR": data, "SWITCHBOARD_MASTER_KEY_FILE": keyFile("ba.agekey", idB, idA)}
	// keys status: B (new, current) wraps nothing yet, A everything.
	status := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(t.Context(), []string{"keys", "status"}, e.get, &out, &errOut); err != nil {
			t.Fatalf("keys status: %v\n%s", err, errOut.String())
		}
		return out.String()
	}
	idOf := func(id *age.X25519Identity) string {
		m, err := crypto.LoadMasterKey(keyFile("one.agekey", id))
		if err != nil {
			t.Fatal(err)
		}
		return m.ID()
	}
	a1, b1 := idOf(idA), idOf(idB)
	// Signing keys: the token key and the erasure certificates' key.
	want := func(cur string, curC, curS int, old string, oldC, oldS int) string {
		return fmt.Sprintf(`{"masterKeyId":%q,"current":true,"customerKeys":%d,"signingKeys":%d}`+"\n"+
			`{"masterKeyId":%q,"current":false,"customerKeys":%d,"signingKeys":%d}`+"\n", cur, curC, curS, old, oldC, oldS)
	}
	if got := status(); got != want(b1, 0, 0, a1, 1, 2) {
		t.Fatalf("keys status before rewrap:\n%s", got)
	}
	if err := run(t.Context(), []string{"keys", "rewrap"}, e.get, &stdout, &stderr); err != nil {
		t.Fatalf("keys rewrap: %v\n%s", err, stderr.String())
	}
	var out struct{ CustomerKeys, SigningKeys int }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.CustomerKeys != 1 || out.SigningKeys != 2 {
		t.Fatalf("keys rewrap printed %q (%v)", stdout.String(), err)
	}
	if got := status(); got != want(b1, 1, 2, a1, 0, 0) {
		t.Fatalf("keys status after rewrap:\n%s", got)
	}

	b := open(keyFile("b.agekey", idB))
	got, err := b.Tenants.Customer(t.Context(), p, c.ID)
	if err != nil || got.Label == nil || *got.Label != "Rotated Label" {
		t.Fatalf("with the new identity only: %+v %v", got, err)
	}
	if err := b.Tokens.EnsureKey(t.Context()); err != nil {
		t.Fatalf("signing key with the new identity only: %v", err)
	}
	// The certificate still verifies against the published erasure keys
	// (after a restart and the rewrap), and B alone can sign the next one.
	cert, _, err := b.Tenants.ErasureCertificate(t.Context(), p, gone.ID)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := b.Erasure.JWKS(t.Context())
	if err != nil || len(jwks) != 1 {
		t.Fatalf("erasure keys %v %v", jwks, err)
	}
	parts := strings.Split(cert, ".")
	pub, _ := base64.RawURLEncoding.DecodeString(jwks[0].X)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		t.Fatal("the certificate no longer verifies after the rewrap")
	}
	if _, err := b.Erasure.Sign(t.Context(), map[string]any{"sub": "x"}); err != nil {
		t.Fatalf("signing with the rewrapped erasure key: %v", err)
	}
	b.close(context.Background())

	old := open(keyFile("a-only.agekey", idA))
	defer old.close(context.Background())
	if _, err := old.Tenants.Customer(t.Context(), p, c.ID); err == nil {
		t.Fatal("the retired identity still opens a customer key")
	}
}
