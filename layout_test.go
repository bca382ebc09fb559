package switchboard_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/switchboard/switchboard"

// Every package of the module lives in one room; a room's non-test code
// imports only the rooms listed for it, so no arrow runs upward:
//
//   - leaf: the shared vocabulary (the root package) and internal/ (ttl,
//     fakeclock). They import no other room.
//   - base: the adapters the domains stand on (store, crypto).
//   - domain: the business packages.
//   - edge: Twilio's adapter, which depends on the domains.
//   - http: the HTTP api, which depends on the domains.
//   - wiring: the package that builds the services. It and the test
//     wiring hold no HTTP, so the api's own tests (package api) build
//     their services through them without an import cycle.
//   - top: the router over the wiring (server) and the commands (cmd/).
//   - testwiring: packages that exist for tests (…test). Only tests and
//     other test wiring import them.
//
// Nothing imports cmd/.
var rooms = map[string][]string{
	"leaf":       {"leaf"},
	"base":       {"leaf", "base"},
	"domain":     {"leaf", "base", "domain"},
	"edge":       {"leaf", "base", "domain"},
	"http":       {"leaf", "base", "domain"},
	"wiring":     {"leaf", "base", "domain", "edge"},
	"top":        {"leaf", "base", "domain", "edge", "http", "wiring", "top"},
	"testwiring": {"leaf", "base", "domain", "edge", "wiring", "testwiring"},
}

// roomOf returns the room of a package path relative to the module ("" for
// the root), or "" for a package no room holds.
func roomOf(rel string) string {
	first, _, _ := strings.Cut(rel, "/")
	last := rel[strings.LastIndex(rel, "/")+1:]
	switch {
	case rel == "" || first == "internal":
		return "leaf"
	case strings.HasSuffix(last, "test"):
		return "testwiring"
	case first == "cmd" || rel == "server":
		return "top"
	case rel == "wiring":
		return "wiring"
	case rel == "store" || rel == "crypto":
		return "base"
	case rel == "tenants" || rel == "contacts" || rel == "messages" || rel == "tokens" || rel == "idempotency" || rel == "webhooks":
		return "domain"
	case rel == "twilio":
		return "edge"
	case rel == "api":
		return "http"
	}
	return ""
}

// pkg is what the rules read of `go list -json`.
type pkg struct {
	ImportPath string
	Imports    []string // non-test code only
}

func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// violations lists every import that breaks the rooms' rules.
func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		room := roomOf(from)
		if room == "" {
			out = append(out, p.ImportPath+": in no room (add it to roomOf)")
			continue
		}
		for _, imp := range p.Imports {
			to, ok := rel(imp)
			if !ok {
				continue // the standard library and third parties
			}
			if first, _, _ := strings.Cut(to, "/"); first == "cmd" {
				out = append(out, p.ImportPath+" imports "+imp+": nothing imports a command")
				continue
			}
			if r := roomOf(to); !slices.Contains(rooms[room], r) {
				out = append(out, p.ImportPath+" ("+room+") imports "+imp+" ("+r+")")
			}
		}
	}
	return out
}

func TestViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    pkg
		want bool
	}{
		{"domain on base and leaf", pkg{module + "/tenants", []string{module + "/store", module + "/internal/ttl", module, "errors"}}, false},
		{"leaf on a domain", pkg{module + "/internal/ttl", []string{module + "/tenants"}}, true},
		{"vocabulary on a domain", pkg{module, []string{module + "/contacts"}}, true},
		{"domain on test wiring", pkg{module + "/messages", []string{module + "/store/storetest"}}, true},
		{"domain on the wiring", pkg{module + "/messages", []string{module + "/wiring"}}, true},
		{"domain on an edge adapter", pkg{module + "/tenants", []string{module + "/twilio"}}, true},
		{"http on twilio", pkg{module + "/api", []string{module + "/twilio"}}, true},
		{"edge on cmd", pkg{module + "/api", []string{module + "/cmd/switchboard"}}, true},
		{"wiring on the router", pkg{module + "/wiring", []string{module + "/server"}}, true},
		{"test wiring on api", pkg{module + "/wiring/wiringtest", []string{module + "/api"}}, true},
		{"test wiring on the wiring", pkg{module + "/wiring/wiringtest", []string{module + "/wiring", module + "/store/storetest"}}, false},
		{"command on everything", pkg{module + "/cmd/switchboard", []string{module + "/server", module + "/wiring", module + "/api"}}, false},
		{"a package in no room", pkg{module + "/misc", nil}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := violations([]pkg{tc.p}); (len(got) > 0) != tc.want {
				t.Fatalf("violations %q, want some: %v", got, tc.want)
			}
		})
	}
}

// TestNoUpwardImports reads every package's non-test imports with
// `go list` and checks them against the rooms.
func TestNoUpwardImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Imports", "./...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: not the module", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestCustomerDataOnlyThroughTheHandle: no non-test code outside store
// reaches the shared customer collections but through store.Tenant: none
// calls DataDatabase (the raw database, for migrate and the benchmarks'
// baselines) or names a data database.
func TestCustomerDataOnlyThroughTheHandle(t *testing.T) {
	var bad []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (path == "third_party" || path == "store" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range []string{"DataDatabase(", `"switchboard_data`} {
			if bytes.Contains(b, []byte(s)) {
				bad = append(bad, path+": "+s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("customer data reached past store.Tenant:\n%s", strings.Join(bad, "\n"))
	}
}
