// Package platformtest wires every service of Switchboard the way
// cmd/switchboard does, on fresh databases of the shared test engine
// (store/storetest): one place for tests and benchmarks to build the
// platform from, so they exercise the wiring production runs.
package platformtest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
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
	Twilio Twilio
	// Sandbox tunes the default sandbox (its secret is derived from the
	// master key).
	Sandbox twilio.SandboxConfig
	// Messaging tunes the messaging service (its stores, ports and public
	// URL are the platform's).
	Messaging messages.Config
	// Now is the tokens' clock (their expiry, the 5 s status cache); nil
	// means time.Now.
	Now func() time.Time
}

// Twilio is both Twilio ports.
type Twilio interface {
	tenants.Twilio
	messages.Twilio
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
	Messages    *messages.Service
	// Sandbox is the sandbox provider, when no Twilio was given.
	Sandbox *twilio.Sandbox
	// PublicURL is where Serve serves: Twilio's callbacks go there.
	PublicURL string
	listener  net.Listener
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	publicURL := "http://" + ln.Addr().String()
	tw := opts.Twilio
	var sandbox *twilio.Sandbox
	if tw == nil {
		sc := opts.Sandbox
		if sc.Secret == nil {
			sc.Secret = master.DeriveKey("sandbox auth tokens")
		}
		sandbox = twilio.NewSandboxWith(sc)
		tb.Cleanup(sandbox.Close)
		tw = sandbox
	}
	erasure := tokens.NewErasureKeys(db.Control.Collection("erasure_keys"), master, nil)
	var tok *tokens.Service
	var ms *messages.Service
	svc := tenants.NewService(tenants.Config{
		Certificates: erasure, Issuer: Issuer, Version: "test",
		Control: db.Control, Keyring: keyring, Twilio: tw,
		Data: db, ScrubKeys: db.ScrubKeys, Logger: storetest.Logger(),
		OnChange: func(id string) { tok.Forget(id); ms.Forget(id) },
	})
	tok = tokens.NewService(tokens.Config{Keys: db.Control.Collection("signing_keys"), Master: master,
		Issuer: Issuer, Status: svc.Status, Now: opts.Now})
	cs := &contacts.Service{Cipher: svc.KeyCipher, Tenant: db.Tenant}
	mc := opts.Messaging
	mc.Control, mc.Tenant, mc.Cipher, mc.KeyCipher, mc.Account = db.Control, db.Tenant, svc.Cipher, svc.KeyCipher, svc.MessagingAccount
	mc.Route = svc.SubaccountCustomer
	mc.Contacts, mc.Twilio, mc.PublicURL, mc.Secret = cs, tw, publicURL, master.DeriveKey("messaging ids")
	if mc.Logger == nil {
		mc.Logger = storetest.Logger()
	}
	ms = messages.NewService(mc)
	return &Platform{
		DB: db, Master: master, Keyring: keyring, Tenants: svc, Tokens: tok,
		Messages: ms, Sandbox: sandbox, PublicURL: publicURL, listener: ln,
		Contacts:    cs,
		Idempotency: idempotency.NewStore(db.Control.Collection("idempotency"), idempotency.WithKey(master.DeriveKey("idempotency fingerprints"))),
		Erasure:     erasure,

		MasterKeyFile: filepath.Join(keyDir, crypto.DevMasterKeyFile),
	}
}

// Serve serves h at PublicURL until tb ends. It may be called once.
func (p *Platform) Serve(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := &httptest.Server{Listener: p.listener, Config: &http.Server{Handler: h}}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv
}
