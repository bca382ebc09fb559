package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/switchboard/switchboard/server"
)

const webhooksUsage = `usage: switchboard webhooks listen [--addr 127.0.0.1:9090] --secret whsec_... [--secret whsec_...]

A local receiver for Switchboard's webhooks, for development: it serves HTTP
on --addr and verifies each POST's Standard Webhooks signature (webhook-id,
webhook-timestamp, webhook-signature) against the endpoint secrets given (any
may match; the timestamp must be within 5 minutes). A verified delivery prints
one line {"webhookId","timestamp","event"} on stdout and is answered 204; any
other is answered 400 and told on stderr, with the logs. It runs until
SIGINT or SIGTERM.
`

// maxWebhookBody bounds the body the receiver reads.
const maxWebhookBody = 1 << 20

// webhooksCommand runs the webhooks commands.
func webhooksCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return subcommand(ctx, "webhooks", webhooksUsage, map[string]command{"listen": webhooksListen}, args, getenv, stdout, stderr)
}

// secretList is a repeatable flag of endpoint secrets that never prints.
// One value may also hold several, separated by spaces or commas (so
// SWITCHBOARD_SECRET can carry two).
type secretList []secret

func (l secretList) String() string {
	if len(l) == 0 {
		return ""
	}
	return "[redacted]"
}

func (l *secretList) Set(v string) error {
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		*l = append(*l, secret(s))
	}
	return nil
}

func webhooksListen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchboard webhooks listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	var secrets secretList
	fs.Var(&secrets, "secret", "an endpoint secret, whsec_...; repeat it for each secret that may have signed (required)")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "log level: DEBUG, INFO, WARN or ERROR")
	// SWITCHBOARD_ADDR is serve's address: a shell set up for serve must
	// not send the receiver onto the server's port. Only --addr sets it.
	env := func(name string) string {
		if name == envName("addr") {
			return ""
		}
		return getenv(name)
	}
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if len(secrets) == 0 {
		fmt.Fprintln(stderr, "webhooks listen: --secret is required")
		return exitError{2, errSilent}
	}
	verifiers, err := webhookVerifiers(secrets)
	if err != nil {
		fmt.Fprintf(stderr, "webhooks listen: %v\n", err)
		return exitError{2, errSilent}
	}
	log := newLogger(stderr, level)
	srv := server.New(*addr, newWebhookReceiver(verifiers, stdout, log), log)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("webhooks listen: receiving", "addr", ln.Addr().String(), "secrets", len(verifiers))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhooks listen: %w", err)
	case <-ctx.Done():
	}
	log.Info("webhooks listen: shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// webhookVerifiers makes one Standard Webhooks verifier per secret. A
// secret must be "whsec_" + base64 of a key (the library alone would also
// take one without the prefix). No error names the secret.
func webhookVerifiers(secrets []secret) ([]*standardwebhooks.Webhook, error) {
	out := make([]*standardwebhooks.Webhook, 0, len(secrets))
	for i, s := range secrets {
		if !strings.HasPrefix(string(s), "whsec_") {
			return nil, fmt.Errorf("--secret %d is not whsec_ + base64", i+1)
		}
		wh, err := standardwebhooks.NewWebhook(string(s))
		if err != nil {
			return nil, fmt.Errorf("--secret %d is not whsec_ + base64", i+1)
		}
		out = append(out, wh)
	}
	return out, nil
}

// webhookReceiver verifies deliveries and prints the verified ones, one
// JSON line each, on its stdout.
type webhookReceiver struct {
	verifiers []*standardwebhooks.Webhook
	log       *slog.Logger

	mu     sync.Mutex // one line at a time
	stdout io.Writer
}

func newWebhookReceiver(verifiers []*standardwebhooks.Webhook, stdout io.Writer, log *slog.Logger) *webhookReceiver {
	return &webhookReceiver{verifiers: verifiers, log: log, stdout: stdout}
}

// deliveryLine is what a verified delivery prints.
type deliveryLine struct {
	WebhookID string          `json:"webhookId"`
	Timestamp int64           `json:"timestamp"`
	Event     json.RawMessage `json:"event"`
}

func (rc *webhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(standardwebhooks.HeaderWebhookID)
	if r.Method != http.MethodPost {
		rc.log.Warn("webhook refused: not a POST", "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rc.log.Warn("webhook refused: body too large", "webhookId", id, "limit", maxWebhookBody)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		rc.log.Warn("webhook refused: reading the body", "webhookId", id, "err", err)
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if err := rc.verify(body, r.Header); err != nil {
		rc.log.Warn("webhook refused: verification failed", "webhookId", id, "err", err)
		http.Error(w, "verification failed", http.StatusBadRequest)
		return
	}
	// Verify parsed it already.
	ts, _ := strconv.ParseInt(r.Header.Get(standardwebhooks.HeaderWebhookTimestamp), 10, 64)
	var event bytes.Buffer
	if err := json.Compact(&event, body); err != nil {
		rc.log.Warn("webhook refused: the verified body is not JSON", "webhookId", id, "err", err)
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(deliveryLine{WebhookID: id, Timestamp: ts, Event: event.Bytes()}); err != nil {
		rc.log.Error("webhook: encoding the line", "webhookId", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	rc.mu.Lock()
	_, err = rc.stdout.Write(line.Bytes())
	rc.mu.Unlock()
	if err != nil {
		rc.log.Error("webhook: writing stdout", "webhookId", id, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	rc.log.Debug("webhook received", "webhookId", id)
	w.WriteHeader(http.StatusNoContent)
}

// verify passes when any secret's verifier accepts the delivery (the
// library's Verify: headers, timestamp tolerance, one matching signature).
func (rc *webhookReceiver) verify(body []byte, h http.Header) error {
	var first error
	for _, wh := range rc.verifiers {
		err := wh.Verify(body, h)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}
