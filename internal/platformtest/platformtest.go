// Package platformtest wires every service of Switchboard the way
// cmd/switchboard does, on fresh databases of the shared test engine
// (store/storetest): one place for tests and benchmarks to build the
// platform from, so they exercise the wiring production runs.
package platformtest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
)

// Issuer is the token issuer of a test platform.
const Issuer = "http://switchboard.test"

// Options vary a platform. The zero value is the sandbox Twilio and the
// wall clock.
type Options struct {
	// Twilio is the Twilio port; nil means the sandbox.
	Twilio tenants.Twilio
	// Now is the tokens' clock (their expiry, the 5 s status cache); nil
	// means time.Now.
	Now func() time.Time
}

// Platform is the wired services, ready for a router (api.NewRouter).
type Platform struct {
	DB          *store.DB
	Master      *crypto.MasterKey
	Keyring     *crypto.Keyring
	Tenants     *tenants.Service
	Tokens      *tokens.Service
	Contacts    *contacts.Service
	Idempotency *idempotency.Store
	Erasure     *tokens.ErasureKeys
	// MasterKeyFile holds the master identity (a development key file).
	MasterKeyFile string
}

// New builds a platform whose databases and keyring live as long as tb.
func New(tb testing.TB, opts Options) *Platform {
	tb.Helper()
	db := storetest.MustOpen(tb)
	keyDir := tb.TempDir()
	master, _, err := crypto.LoadOrCreateDevMasterKey(keyDir)
	if err != nil {
		tb.Fatal(err)
	}
	keyring := crypto.NewKeyring(db.Keys.Collection("customer_keys"), master)
	tb.Cleanup(keyring.Close)
	tw := opts.Twilio
	if tw == nil {
		tw = twilio.NewSandbox()
	}
	erasure := tokens.NewErasureKeys(db.Control.Collection("erasure_keys"), master, nil)
	var tok *tokens.Service
	svc := tenants.NewService(tenants.Config{
		Certificates: erasure, Issuer: Issuer, Version: "test",
		Control: db.Control, Keyring: keyring, Twilio: tw,
		DropCustomerData: db.DropCustomer, ScrubKeys: db.ScrubKeys, Logger: storetest.Logger(),
		OnChange: func(id string) { tok.Forget(id) },
	})
	tok = tokens.NewService(tokens.Config{Keys: db.Control.Collection("signing_keys"), Master: master,
		Issuer: Issuer, Status: svc.Status, Now: opts.Now})
	return &Platform{
		DB: db, Master: master, Keyring: keyring, Tenants: svc, Tokens: tok,
		Contacts:    &contacts.Service{Cipher: svc.KeyCipher, Database: db.Customer},
		Idempotency: idempotency.NewStore(db.Control.Collection("idempotency"), idempotency.WithKey(master.DeriveKey("idempotency fingerprints"))),
		Erasure:     erasure,

		MasterKeyFile: filepath.Join(keyDir, crypto.DevMasterKeyFile),
	}
}
