package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/tenants"
)

const partnersUsage = `usage: switchboard partners <command> [flags]

commands:
  create --name NAME          register a partner; prints {"id","name","apiKey"} (the key is shown only here)
  list                        one line per partner: {"id","name","keyPrefix","createdAt","revokedAt"}
  rotate-key --id ID [--now]  a new key, printed once; the old one keeps working 24 h (--now: not at all)
  revoke --id ID              refuse every key of the partner from now on; its customers are untouched

Every command also takes the storage flags (--data-dir, --mongodb-uri, ...): see 'switchboard partners create -h'.
`

// partners runs the partner key management commands.
func partners(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, partnersUsage)
		return exitError{2, errSilent}
	}
	switch args[0] {
	case "create":
		return partnerCommand(ctx, "create", args[1:], getenv, stdout, stderr)
	case "list":
		return partnerCommand(ctx, "list", args[1:], getenv, stdout, stderr)
	case "rotate-key":
		return partnerCommand(ctx, "rotate-key", args[1:], getenv, stdout, stderr)
	case "revoke":
		return partnerCommand(ctx, "revoke", args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, partnersUsage)
		return nil
	}
	fmt.Fprintf(stderr, "partners: unknown command %q\n\n%s", args[0], partnersUsage)
	return exitError{2, errSilent}
}

type partnerKeyLine struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	APIKey string `json:"apiKey"`
}

type partnerLine struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	KeyPrefix string     `json:"keyPrefix"`
	CreatedAt string     `json:"createdAt"`
	RevokedAt *string    `json:"revokedAt"`
	revoked   *time.Time `json:"-"`
}

// partnerCommand parses one partners command's flags, opens the storage
// (attaching to a running server's engine) and runs it. stdout gets only
// JSON lines; everything else goes to stderr.
func partnerCommand(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlagSet("partners "+cmd, &cfg, false, stderr)
	var name, id *string
	var now *bool
	switch cmd {
	case "create":
		name = fs.String("name", "", "the partner's name, unique ignoring case (required)")
	case "rotate-key", "revoke":
		id = fs.String("id", "", "the partner's id (required)")
	}
	if cmd == "rotate-key" {
		now = fs.Bool("now", false, "retire the old key at once instead of after 24 h")
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case name != nil && *name == "":
		fmt.Fprintf(stderr, "partners %s: --name is required\n", cmd)
		return exitError{2, errSilent}
	case id != nil && *id == "":
		fmt.Fprintf(stderr, "partners %s: --id is required\n", cmd)
		return exitError{2, errSilent}
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer a.close(context.Background())
	out := json.NewEncoder(stdout)
	switch cmd {
	case "create":
		p, key, err := a.Tenants.CreatePartner(ctx, *name)
		if errors.Is(err, tenants.ErrPartnerNameTaken) {
			fmt.Fprintf(stderr, "partners create: the name %q is taken\n", *name)
			return exitError{1, errSilent}
		}
		if err != nil {
			return fmt.Errorf("partners create: %w", err)
		}
		return out.Encode(partnerKeyLine{p.ID, p.Name, key})
	case "list":
		list, err := a.Tenants.Partners(ctx)
		if err != nil {
			return fmt.Errorf("partners list: %w", err)
		}
		for _, p := range list {
			line := partnerLine{ID: p.ID, Name: p.Name, KeyPrefix: p.KeyPrefix, CreatedAt: switchboard.FormatTime(p.CreatedAt)}
			if p.RevokedAt != nil {
				r := switchboard.FormatTime(*p.RevokedAt)
				line.RevokedAt = &r
			}
			if err := out.Encode(line); err != nil {
				return err
			}
		}
		return nil
	case "rotate-key":
		p, key, err := a.Tenants.RotatePartnerKey(ctx, *id, *now)
		if errors.Is(err, tenants.ErrNotFound) {
			fmt.Fprintf(stderr, "partners rotate-key: no partner %q\n", *id)
			return exitError{1, errSilent}
		}
		if err != nil {
			return fmt.Errorf("partners rotate-key: %w", err)
		}
		return out.Encode(partnerKeyLine{p.ID, p.Name, key})
	default: // revoke
		err := a.Tenants.RevokePartner(ctx, *id)
		if errors.Is(err, tenants.ErrNotFound) {
			fmt.Fprintf(stderr, "partners revoke: no partner %q\n", *id)
			return exitError{1, errSilent}
		}
		if err != nil {
			return fmt.Errorf("partners revoke: %w", err)
		}
		fmt.Fprintf(stderr, "partners revoke: every key of %s is refused from now on\n", *id)
		return nil
	}
}
