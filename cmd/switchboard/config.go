package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
)

// config is the configuration, parsed once from flags and environment.
type config struct {
	Addr             string
	DataDir          string
	MongoURI         secret // may hold a password
	MasterKeyFile    string
	PublicURL        string
	TwilioAccountSID string
	TwilioAuthToken  secret
	TwilioAPIURL     string
	LogLevel         slog.Level
	RateLimit        float64
	RateBurst        int
	// TwilioWebhookLimit is the refused Twilio callbacks per second per
	// client address; TrustedProxies the proxies whose X-Forwarded-For
	// names the client.
	TwilioWebhookLimit float64
	TrustedProxies     prefixes
	// WebhooksAllowPrivate is "true", "false" or "" (true with the
	// sandbox provider, false with Twilio); WebhooksRetryScale multiplies
	// the delivery retry schedule.
	WebhooksAllowPrivate string
	WebhooksRetryScale   float64

	// migrating: opened by migrate, which reads data of older layouts.
	migrating bool
}

// prefixes is a comma-separated list of CIDRs (a bare address is its own
// /32 or /128), as a flag.
type prefixes []netip.Prefix

func (p prefixes) String() string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// Set parses v, replacing the list.
func (p *prefixes) Set(v string) error {
	var out prefixes
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if x, err := netip.ParsePrefix(f); err == nil {
			out = append(out, x.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an IP address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	*p = out
	return nil
}

// secret is a string that never prints.
type secret string

func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts under %#v too.
func (s secret) GoString() string { return `"` + s.String() + `"` }

// LogValue redacts in slog.
func (s secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Set makes secret a flag.Value.
func (s *secret) Set(v string) error { *s = secret(v); return nil }

// newFlagSet declares the flags every command shares (where the data is, the
// keys, Twilio) and, for serve, the listener's.
func newFlagSet(name string, cfg *config, serving bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("switchboard "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "embedded engine files and the development master key")
	fs.Var(&cfg.MongoURI, "mongodb-uri", "a MongoDB deployment (default: the embedded engine)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "age identity file(s) that wrap customer keys, newest first (default: a development key in the data dir, embedded mode only)")
	fs.StringVar(&cfg.TwilioAccountSID, "twilio-account-sid", "", "the platform's Twilio master account SID (default: sandbox provider)")
	fs.Var(&cfg.TwilioAuthToken, "twilio-auth-token", "the platform's Twilio master auth token")
	fs.StringVar(&cfg.TwilioAPIURL, "twilio-api-url", "https://api.twilio.com", "where Twilio REST calls go")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: DEBUG, INFO, WARN or ERROR")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "the address Twilio calls back, tokens and erasure certificates are issued for (default: http:// + the listen address)")
	if serving {
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "listen address")

		fs.Float64Var(&cfg.RateLimit, "rate-limit", 100, "requests per second, per partner and per customer's apps")
		fs.IntVar(&cfg.RateBurst, "rate-burst", 200, "burst of requests, per partner and per customer's apps")
		fs.Float64Var(&cfg.TwilioWebhookLimit, "twilio-webhook-limit", 20, "requests per second per client address that fail the Twilio signature check (then 429)")
		fs.StringVar(&cfg.WebhooksAllowPrivate, "webhooks-allow-private", "", "let webhook endpoints be http or private addresses, never link-local (default: true in the sandbox, false with Twilio)")
		fs.Float64Var(&cfg.WebhooksRetryScale, "webhooks-retry-scale", 1, "multiplies the webhook retry schedule (tests use e.g. 0.01)")
		fs.Var(&cfg.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client (default: none; the peer is the client)")
	}
	return fs
}

// envName is the environment variable of a flag: data-dir → SWITCHBOARD_DATA_DIR.
func envName(flagName string) string {
	return "SWITCHBOARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{0, errSilent}
		}
		return exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return exitError{2, errSilent}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), e)
			}
		}
	})
	return err
}
