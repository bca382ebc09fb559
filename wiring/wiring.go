// Package wiring builds Switchboard's services from their parts, in the
// one order production and the tests share: cmd/switchboard calls Build for
// every command, and wiring/wiringtest calls it on fresh test databases, so
// the tests run the wiring production runs. It holds no policy of its own:
// where the store, the master key and Twilio come from is the caller's
// choice, and so is the HTTP router (package server).
package wiring

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/webhooks"
)

// Twilio is both ports an adapter of Twilio serves (twilio.Client and
// twilio.Sandbox are two).
type Twilio interface {
	tenants.Twilio
	messages.Twilio
}

// Config is the parts an App is built from.
type Config struct {
	// DB is the opened store. It stays the caller's: App.Close does not
	// close it.
	DB *store.DB
	// Master wraps every customer key and signing key; the secrets of
	// cursors, idempotency fingerprints, messaging ids and sandbox tokens
	// are derived from it.
	Master *crypto.MasterKey
	// Twilio is the Twilio port; nil means the sandbox provider.
	Twilio Twilio
	// Sandbox tunes the sandbox when Twilio is nil. Its Secret defaults to
	// one derived from Master, so the sandbox's signed callbacks survive a
	// restart.
	Sandbox twilio.SandboxConfig
	// PublicURL is where Twilio calls back (SWITCHBOARD_PUBLIC_URL).
	PublicURL string
	// Issuer is the issuer of tokens and erasure certificates; empty means
	// PublicURL.
	Issuer string
	// Version is the build's version, written into erasure certificates.
	Version string
	// Logger receives every service's log lines; nil means slog.Default.
	Logger *slog.Logger
	// Now is the tokens' clock (their expiry, the status cache); nil means
	// time.Now.
	Now func() time.Time
	// Messaging tunes the messaging service (attempt lease, backoff, a
	// logger of its own). Its stores, ports, public URL and secret are
	// always the App's.
	Messaging messages.Config
	// Webhooks tunes pushed events: AllowPrivate nil means true with the
	// sandbox provider and false with Twilio (SWITCHBOARD_WEBHOOKS_ALLOW_PRIVATE);
	// RetryScale 0 means 1.
	Webhooks WebhooksConfig
}

// WebhooksConfig tunes pushed events.
type WebhooksConfig struct {
	AllowPrivate *bool
	RetryScale   float64
	// Resolver, if set, resolves endpoint hosts (tests).
	Resolver webhooks.Resolver
}

// App is every service of Switchboard, wired. Its fields are set by Build
// and never changed afterwards.
type App struct {
	DB          *store.DB
	Master      *crypto.MasterKey
	Keyring     *crypto.Keyring
	Tenants     *tenants.Service
	Tokens      *tokens.Service
	Contacts    *contacts.Service
	Messages    *messages.Service
	Webhooks    *webhooks.Service
	Erasure     *tokens.ErasureKeys
	Idempotency *idempotency.Store
	// CursorKey authenticates list cursors across instances and restarts.
	CursorKey []byte
	// Sandbox is the sandbox provider, nil when Config.Twilio was given.
	Sandbox *twilio.Sandbox
	// PublicURL is Config.PublicURL.
	PublicURL string
	Logger    *slog.Logger
}

// Build wires the services over cfg's parts. It reads and writes nothing:
// a command that needs the token signing key calls Tokens.EnsureKey.
func Build(ctx context.Context, cfg Config) (*App, error) {
	if cfg.DB == nil || cfg.Master == nil {
		return nil, errors.New("wiring: a store and a master key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Issuer == "" {
		cfg.Issuer = cfg.PublicURL
	}
	db, master := cfg.DB, cfg.Master
	tw := cfg.Twilio
	var sandbox *twilio.Sandbox
	if tw == nil {
		sc := cfg.Sandbox
		if sc.Secret == nil {
			sc.Secret = master.DeriveKey("sandbox auth tokens")
		}
		sandbox = twilio.NewSandboxWith(sc)
		tw = sandbox
	}
	allowPrivate := sandbox != nil
	if cfg.Webhooks.AllowPrivate != nil {
		allowPrivate = *cfg.Webhooks.AllowPrivate
	}
	var svc *tenants.Service
	wh := webhooks.NewService(webhooks.Config{
		Control: db.Control, Tenant: db.Tenant, Master: master,
		Cipher: func(ctx context.Context, customerID string) (*crypto.Cipher, error) {
			return svc.Cipher(ctx, customerID)
		},
		Shredded:   func(err error) bool { return errors.Is(err, tenants.ErrDataShredded) },
		Guard:      webhooks.Guard{AllowPrivate: allowPrivate, Resolver: cfg.Webhooks.Resolver},
		RetryScale: cfg.Webhooks.RetryScale, Version: cfg.Version, Logger: cfg.Logger,
	})
	keyring := crypto.NewKeyring(db.Keys.Collection("customer_keys"), master)
	erasure := tokens.NewErasureKeys(db.Control.Collection("erasure_keys"), master, nil)
	var tok *tokens.Service
	var ms *messages.Service
	svc = tenants.NewService(tenants.Config{
		Control:      db.Control,
		Events:       wh,
		Keyring:      keyring,
		Twilio:       tw,
		Data:         db,
		ScrubKeys:    db.ScrubKeys,
		Certificates: erasure,
		Issuer:       cfg.Issuer,
		Version:      cfg.Version,
		Logger:       cfg.Logger,
		// A deactivation, termination or shred refuses the customer's tokens
		// at once here; other instances within the status cache's 5 s.
		OnChange: func(customerID string) { tok.Forget(customerID); ms.Forget(customerID) },
	})
	tok = tokens.NewService(tokens.Config{
		Keys: db.Control.Collection("signing_keys"), Master: master, Issuer: cfg.Issuer, Status: svc.Status, Now: cfg.Now,
	})
	cs := &contacts.Service{Cipher: svc.Cipher, Tenant: db.Tenant, Events: wh}
	mc := cfg.Messaging
	mc.Control, mc.Tenant, mc.Cipher, mc.Account = db.Control, db.Tenant, svc.Cipher, svc.MessagingAccount
	mc.Route, mc.Contacts, mc.Twilio, mc.Events = svc.SubaccountCustomer, cs, tw, wh
	mc.PublicURL, mc.Secret = cfg.PublicURL, master.DeriveKey("messaging ids")
	if mc.Logger == nil {
		mc.Logger = cfg.Logger
	}
	ms = messages.NewService(mc)
	return &App{
		DB: db, Master: master, Keyring: keyring, Tenants: svc, Tokens: tok, Contacts: cs, Messages: ms, Webhooks: wh, Erasure: erasure,
		Idempotency: idempotency.NewStore(db.Control.Collection("idempotency"), db.Control.Collection("idempotency_due"),
			idempotency.WithKey(master.DeriveKey("idempotency fingerprints"))),
		CursorKey: master.DeriveKey("list cursors"),
		Sandbox:   sandbox, PublicURL: cfg.PublicURL, Logger: cfg.Logger,
	}, nil
}

// Close releases what Build made (the sandbox, the keyring's cache); the
// store is the caller's to close.
func (a *App) Close() {
	if a.Sandbox != nil {
		a.Sandbox.Close()
	}
	a.Keyring.Close()
}
