// Package wiringtest builds a Switchboard App for tests and benchmarks
// through wiring.Build, the function cmd/switchboard uses: it supplies only
// the test pieces (a fresh database of the shared test engine from
// store/storetest, a master key in a temporary directory, the sandbox or a
// Twilio double, a listener) and wires nothing itself.
package wiringtest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/wiring"
)

// Issuer is the token issuer of a test platform.
const Issuer = "http://switchboard.test"

// Options vary a platform. The zero value is the sandbox Twilio and the
// wall clock.
type Options struct {
	// Twilio is the Twilio port; nil means the sandbox.
	Twilio wiring.Twilio
	// Sandbox tunes the default sandbox (its secret is derived from the
	// master key).
	Sandbox twilio.SandboxConfig
	// Messaging tunes the messaging service (wiring.Config.Messaging).
	Messaging messages.Config
	// Now is the tokens' clock; nil means time.Now.
	Now func() time.Time
	// Webhooks tunes pushed events (wiring.Config.Webhooks).
	Webhooks wiring.WebhooksConfig
}

// Platform is a wired App on test parts, ready for a router.
type Platform struct {
	*wiring.App
	// MasterKeyFile holds the master identity (a development key file).
	MasterKeyFile string
	listener      net.Listener
}

// New builds a platform whose databases and services live as long as tb.
// Its PublicURL is a listener Serve serves on.
func New(tb testing.TB, opts Options) *Platform {
	tb.Helper()
	db := storetest.MustOpen(tb)
	keyDir := tb.TempDir()
	master, _, err := crypto.LoadOrCreateDevMasterKey(keyDir)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	a, err := wiring.Build(tb.Context(), wiring.Config{
		DB: db, Master: master, Twilio: opts.Twilio, Sandbox: opts.Sandbox,
		PublicURL: "http://" + ln.Addr().String(), Issuer: Issuer, Version: "test",
		Logger: storetest.Logger(), Now: opts.Now, Messaging: opts.Messaging, Webhooks: opts.Webhooks,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	return &Platform{App: a, MasterKeyFile: filepath.Join(keyDir, crypto.DevMasterKeyFile), listener: ln}
}

// Serve serves h at PublicURL until tb ends. It may be called once.
func (p *Platform) Serve(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := &httptest.Server{Listener: p.listener, Config: &http.Server{Handler: h}}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv
}
