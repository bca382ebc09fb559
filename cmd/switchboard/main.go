// Command switchboard runs the Switchboard server and its operator commands:
// serve, partners create, purge and version. It opens the parts its
// configuration names (master key, store, Twilio), has wiring.Build wire the
// services over them, and shuts them down in reverse.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// gin's mode is process-wide: the composition root sets it, once.
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		var ec exitError
		if errors.As(err, &ec) {
			os.Exit(ec.code)
		}
		os.Exit(1)
	}
}

// exitError carries a process exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// errSilent is an error whose story has already been told on stderr.
var errSilent = errors.New("failed")

const usage = `usage: switchboard <command> [flags]

commands:
  serve                       run the HTTP server (and, in embedded mode, the database engine)
  partners create --name N    register a partner; prints {"id","name","apiKey"}
  partners list               one JSON line per partner (never a key)
  partners rotate-key --id ID a new key; the old one works 24 h more (--now: not at all)
  partners revoke --id ID     refuse every key of a partner
  purge [--now T] [--dry-run] shred terminated customers whose retention has ended
  migrate                     move data of an older storage layout into this one (every server stopped)
  keys status                 what each master identity still wraps
  keys rewrap                 re-wrap every key under the newest master identity (rotation)
  sandbox inbound --from E164 --to E164 --body TEXT
                              sandbox only: a signed inbound SMS webhook to the running server
  webhooks listen --secret whsec_... [--addr A]
                              a local receiver: prints each verified webhook delivery as a JSON line
  version                     print the version

Run 'switchboard <command> -h' for the flags of a command. Every flag can also
be set through its environment variable (SWITCHBOARD_ADDR for --addr, ...).
`

const keysUsage = `usage: switchboard keys <command> [flags]

commands:
  status    one line per master identity of the key file, newest first:
            {"masterKeyId","current","customerKeys","signingKeys"} (what it still wraps)
  rewrap    re-wrap every customer key and token signing key under the newest master identity;
            prints {"masterKeyId","customerKeys","signingKeys"}
`

// run is the program: main only turns its error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{2, errSilent}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "partners":
		return partners(ctx, args[1:], getenv, stdout, stderr)
	case "purge":
		return purge(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		switch {
		case len(args) >= 2 && args[1] == "rewrap":
			return rewrap(ctx, args[2:], getenv, stdout, stderr)
		case len(args) >= 2 && args[1] == "status":
			return keysStatus(ctx, args[2:], getenv, stdout, stderr)
		case len(args) >= 2 && (args[1] == "-h" || args[1] == "-help" || args[1] == "--help" || args[1] == "help"):
			fmt.Fprint(stdout, keysUsage)
			return nil
		}
		fmt.Fprint(stderr, keysUsage)
		return exitError{2, errSilent}
	case "sandbox":
		return sandbox(ctx, args[1:], getenv, stdout, stderr)
	case "webhooks":
		return webhooksCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return exitError{2, errSilent}
	}
}
