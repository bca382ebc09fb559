package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio"
)

const sandboxUsage = `usage: switchboard sandbox inbound --from E164 --to E164 --body TEXT

Sandbox only (no Twilio credentials): posts a signed inbound SMS webhook to the
running server (SWITCHBOARD_PUBLIC_URL, else http:// + --addr), as Twilio would
for a message from --from to --to, one of a customer's sandbox numbers.
`

// sandbox runs the sandbox commands.
func sandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return subcommand(ctx, "sandbox", sandboxUsage, map[string]command{"inbound": sandboxInbound}, args, getenv, stdout, stderr)
}

// command is one subcommand's entry point.
type command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// subcommand runs the subcommand of group that args name, or prints the
// group's usage.
func subcommand(ctx context.Context, group, usage string, cmds map[string]command, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2, errSilent}
	}
	if run, ok := cmds[args[0]]; ok {
		return run(ctx, args[1:], getenv, stdout, stderr)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", group, args[0], usage)
	return exitError{2, errSilent}
}

func sandboxInbound(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("sandbox inbound", &cfg, false, stderr)
	from := fs.String("from", "", "the sender, E.164 (required)")
	to := fs.String("to", "", "the customer's sandbox number, E.164 (required)")
	body := fs.String("body", "", "the text (required)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "the running server's listen address (when no public URL is set)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	fromN, okFrom := switchboard.NormalizePhone(*from, "")
	toN, okTo := switchboard.NormalizePhone(*to, "")
	switch {
	case !okFrom || !strings.HasPrefix(*from, "+"):
		fmt.Fprintln(stderr, "sandbox inbound: --from must be a phone number in E.164 form")
		return exitError{2, errSilent}
	case !okTo || !strings.HasPrefix(*to, "+"):
		fmt.Fprintln(stderr, "sandbox inbound: --to must be a phone number in E.164 form")
		return exitError{2, errSilent}
	case *body == "":
		fmt.Fprintln(stderr, "sandbox inbound: --body is required")
		return exitError{2, errSilent}
	case cfg.TwilioAccountSID != "" || cfg.TwilioAuthToken != "":
		fmt.Fprintln(stderr, "sandbox inbound: Twilio credentials are set: real Twilio sends inbound messages, not this command")
		return exitError{2, errSilent}
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + cfg.Addr
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer a.close(context.Background())
	_, accountSID, err := a.Messages.RouteNumber(ctx, toN)
	if errors.Is(err, messages.ErrNumberNotFound) {
		fmt.Fprintln(stderr, "sandbox inbound: --to is no customer's number (buy one with POST /v1/customers/{id}/phone-numbers)")
		return exitError{1, errSilent}
	}
	if err != nil {
		return fmt.Errorf("sandbox inbound: %w", err)
	}
	// The sandbox keeps the message, as Twilio would: its SID is one the
	// running server's sandbox (same master key, same secret) confirms
	// when an opt-in asks (twilio.Sandbox.Inbound).
	params := a.Sandbox.Inbound(accountSID, fromN, toN, *body)
	target := strings.TrimSuffix(cfg.PublicURL, "/") + messages.InboundPath
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sandbox inbound: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilio.Sign(a.Sandbox.AuthToken(accountSID), target, params))
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "sandbox inbound: the server at %s did not answer: is 'switchboard serve' running?\n", cfg.PublicURL)
		return exitError{1, errSilent}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		fmt.Fprintf(stderr, "sandbox inbound: the server answered %d: %s\n", resp.StatusCode, b)
		return exitError{1, errSilent}
	}
	fmt.Fprintf(stdout, "{\"messageSid\":%q,\"status\":%d}\n", params["MessageSid"], resp.StatusCode)
	return nil
}
