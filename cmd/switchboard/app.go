package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/server"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/webhooks"
	"github.com/switchboard/switchboard/wiring"
)

// app is every part the commands share: the wired services over the store
// this command opened. close shuts them down in reverse.
type app struct{ *wiring.App }

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openApp opens the parts cfg names (the master key, the store, Twilio) and
// wires them with wiring.Build. Outside embedded mode a master key file is
// required: the server refuses to start without one.
func openApp(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	embedded := cfg.MongoURI == ""
	if !embedded && cfg.MasterKeyFile == "" {
		return nil, errors.New("SWITCHBOARD_MASTER_KEY_FILE is required when SWITCHBOARD_MONGODB_URI is set: " +
			"customer keys must be wrapped under a master key the operator keeps (the development key exists only in embedded mode)")
	}
	var (
		master *crypto.MasterKey
		err    error
	)
	if cfg.MasterKeyFile != "" {
		master, err = crypto.LoadMasterKey(cfg.MasterKeyFile)
	} else {
		var created bool
		master, created, err = crypto.LoadOrCreateDevMasterKey(cfg.DataDir)
		if err == nil {
			log.Warn("USING A DEVELOPMENT MASTER KEY stored next to the data: anyone who can read the data dir can read every customer's data. "+
				"Set SWITCHBOARD_MASTER_KEY_FILE in production.", "dataDir", cfg.DataDir, "created", created)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	db, err := store.Open(ctx, store.Config{URI: string(cfg.MongoURI), DataDir: cfg.DataDir, Logger: log})
	if err != nil {
		return nil, err
	}
	if !cfg.migrating {
		// Data of an older layout is never served, purged or changed.
		if err := db.CheckLayout(ctx); err != nil {
			db.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}

	var tw wiring.Twilio
	if cfg.TwilioAccountSID != "" || cfg.TwilioAuthToken != "" {
		client, err := twilio.NewClient(twilio.Config{
			AccountSID: cfg.TwilioAccountSID,
			AuthToken:  string(cfg.TwilioAuthToken),
			APIURL:     cfg.TwilioAPIURL,
		})
		if err != nil {
			db.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("twilio: %w", err)
		}
		tw = client
	} else {
		log.Info("no Twilio master credentials: using the sandbox provider (no messages leave this machine)")
	}

	if cfg.PublicURL == "" {
		addr := cfg.Addr
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		cfg.PublicURL = "http://" + addr
	}
	wc := wiring.WebhooksConfig{RetryScale: cfg.WebhooksRetryScale}
	if cfg.WebhooksAllowPrivate != "" {
		allow := cfg.WebhooksAllowPrivate == "true"
		wc.AllowPrivate = &allow
	}
	a, err := wiring.Build(ctx, wiring.Config{
		DB: db, Master: master, Twilio: tw, PublicURL: cfg.PublicURL, Version: version, Logger: log, Webhooks: wc,
	})
	if err != nil {
		db.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &app{a}, nil
}

func (a *app) close(ctx context.Context) error {
	a.App.Close()
	return a.DB.Close(ctx)
}

// serve runs the HTTP server until ctx ends (SIGTERM), then stops accepting,
// lets in-flight requests finish and closes the engine cleanly.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("serve", &cfg, true, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	if cfg.RateLimit <= 0 || cfg.RateBurst < 1 {
		fmt.Fprintln(stderr, "serve: --rate-limit must be above 0 and --rate-burst at least 1")
		return exitError{2, errSilent}
	}
	if cfg.TwilioWebhookLimit <= 0 {
		fmt.Fprintln(stderr, "serve: --twilio-webhook-limit must be above 0")
		return exitError{2, errSilent}
	}
	if v := cfg.WebhooksAllowPrivate; v != "" && v != "true" && v != "false" {
		fmt.Fprintln(stderr, "serve: --webhooks-allow-private must be true or false")
		return exitError{2, errSilent}
	}
	if cfg.WebhooksRetryScale <= 0 {
		fmt.Fprintln(stderr, "serve: --webhooks-retry-scale must be above 0")
		return exitError{2, errSilent}
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := a.close(context.Background()); err != nil {
			log.Error("close", "err", err)
		}
	}()

	if err := a.Tokens.EnsureKey(ctx); err != nil {
		return fmt.Errorf("token signing key: %w", err)
	}
	go sweepEvery(ctx, time.Hour, a.Idempotency, log)
	router := server.Router(a.App, server.Options{
		RateLimit:          cfg.RateLimit,
		RateBurst:          cfg.RateBurst,
		TwilioWebhookLimit: cfg.TwilioWebhookLimit,
		TrustedProxies:     cfg.TrustedProxies,
	})
	// The sender hands accepted messages to Twilio; it stops after the
	// HTTP server, so nothing accepted waits for a restart needlessly.
	sendCtx, stopSender := context.WithCancel(context.WithoutCancel(ctx))
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		a.Messages.Run(sendCtx, messages.SenderOptions{})
	}()
	// The delivery worker pushes events to webhook endpoints; like the
	// sender it stops after the HTTP server.
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		a.Webhooks.Run(sendCtx, webhooks.WorkerOptions{})
	}()
	defer func() {
		stopSender()
		<-senderDone
		<-workerDone
	}()
	srv := server.New(cfg.Addr, router, log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("switchboard listening", "addr", ln.Addr().String(), "publicUrl", cfg.PublicURL,
		"embedded", a.DB.Embedded(), "version", version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// sweepEvery deletes expired Idempotency-Key records every interval until
// ctx ends (the embedded engine has no TTL indexes). Several instances
// sweeping at once is safe, only redundant.
func sweepEvery(ctx context.Context, interval time.Duration, idem *idempotency.Store, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := idem.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("idempotency sweep", "err", err)
				continue
			}
			log.Debug("idempotency sweep", "keys", n)
		}
	}
}

// purge prints one JSON line per due customer, then a summary line. It
// fails (exit 1) when any customer failed; the others are still processed.
func purge(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("purge", &cfg, false, stderr)
	nowFlag := fs.String("now", "", "treat this RFC 3339 time as now (default: the current time)")
	dryRun := fs.Bool("dry-run", false, "report what would be shredded, change nothing")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	now := time.Now()
	if *nowFlag != "" {
		t, err := time.Parse(time.RFC3339, *nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "purge: --now %q is not an RFC 3339 time such as 2099-01-01T00:00:00Z\n", *nowFlag)
			return exitError{2, errSilent}
		}
		now = t
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close(context.Background())

	enc := json.NewEncoder(stdout)
	type line struct {
		CustomerID string `json:"customerId"`
		ShredAt    string `json:"shredAt"`
		Outcome    string `json:"outcome"`
		Error      string `json:"error,omitempty"`
	}
	sum, err := a.Tenants.Purge(ctx, tenants.PurgeOptions{Now: now, DryRun: *dryRun}, func(r tenants.PurgeResult) {
		l := line{CustomerID: r.CustomerID, ShredAt: r.ShredAt.UTC().Format("2006-01-02T15:04:05.000Z"), Outcome: r.Outcome}
		if r.Err != nil {
			l.Error = r.Err.Error()
			log.Error("purge: customer failed", "customerId", r.CustomerID, "err", r.Err)
		}
		enc.Encode(l)
	})
	if err != nil {
		return err
	}
	type summary struct {
		Due      int  `json:"due"`
		Shredded int  `json:"shredded"`
		Failed   int  `json:"failed"`
		DryRun   bool `json:"dryRun"`
	}
	enc.Encode(struct {
		Summary summary `json:"summary"`
	}{summary{sum.Due, sum.Shredded, sum.Failed, sum.DryRun}})
	if sum.Failed > 0 {
		return exitError{1, fmt.Errorf("purge: %d of %d customers failed", sum.Failed, sum.Due)}
	}
	return nil
}

// keysStatus prints one JSON line per master identity of the key file,
// newest first: how many live customer keys and token signing keys it
// still wraps. An identity that wraps none may leave the file once the
// backup window has passed.
func keysStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("keys status", &cfg, false, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer a.close(context.Background())
	customers, err := a.Keyring.CountByMaster(ctx)
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	// Signing keys: the tenant tokens' and the erasure certificates'.
	signing, err := crypto.CountByMaster(ctx, a.DB.Control.Collection("signing_keys"))
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	certKeys, err := crypto.CountByMaster(ctx, a.DB.Control.Collection("erasure_keys"))
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	for id, n := range certKeys {
		signing[id] += n
	}
	out := json.NewEncoder(stdout)
	ids := a.Master.IDs()
	for i, id := range ids {
		if err := out.Encode(struct {
			MasterKeyID  string `json:"masterKeyId"`
			Current      bool   `json:"current"`
			CustomerKeys int    `json:"customerKeys"`
			SigningKeys  int    `json:"signingKeys"`
		}{id, i == 0, customers[id], signing[id]}); err != nil {
			return err
		}
	}
	for id, n := range customers {
		if !slices.Contains(ids, id) {
			fmt.Fprintf(stderr, "keys status: %d customer keys are wrapped under %s, which is not in the key file: they cannot be opened\n", n, id)
		}
	}
	return nil
}

// rewrap moves every customer key and token signing key to the newest
// master identity, so older identities can be retired once the backup
// window has passed. stdout is one JSON line.
func rewrap(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("keys rewrap", &cfg, false, stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close(context.Background())
	customers, err := a.Keyring.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	signing, err := a.Tokens.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	erasureKeys, err := a.Erasure.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("keys rewrap: %w", err)
	}
	signing += erasureKeys
	return json.NewEncoder(stdout).Encode(struct {
		MasterKeyID  string `json:"masterKeyId"`
		CustomerKeys int    `json:"customerKeys"`
		SigningKeys  int    `json:"signingKeys"`
	}{a.Master.ID(), customers, signing})
}
