package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
)

var binary struct {
	once sync.Once
	path string
	err  error
}

// realBinary builds ./cmd/switchboard once per test run, so the command
// line is tried as an operator runs it: a separate process, exit codes,
// stdout and stderr apart.
func realBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "sbbin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = errors.New(string(out))
		}
	})
	if binary.err != nil {
		t.Fatalf("build the binary: %v", binary.err)
	}
	return binary.path
}

// sb runs the real binary with the environment e and returns its stdout,
// stderr and exit code.
func sb(t *testing.T, e env, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(realBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range e {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestPartnerKeysThroughTheBinary: create, a taken name, list, rotate with
// and without --now, revoke, each through the real binary against a
// running server's engine, with the keys tried on the server.
func TestPartnerKeysThroughTheBinary(t *testing.T) {
	e := env{"SWITCHBOARD_ADDR": freeAddr(t), "SWITCHBOARD_DATA_DIR": t.TempDir()}
	srv := startServer(t, e)
	status := func(key string) int { st, _ := srv.call(t, "GET", "/v1/industries", key, nil); return st }
	eventually := func(key string, want int) {
		t.Helper()
		deadline := time.Now().Add(8 * time.Second) // the server remembers a verified key for 5 s
		for status(key) != want {
			if time.Now().After(deadline) {
				t.Fatalf("key still answers %d, want %d", status(key), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	type keyLine struct{ ID, Name, APIKey string }
	decode := func(out string) keyLine {
		t.Helper()
		var k keyLine
		if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &k) != nil || k.APIKey == "" {
			t.Fatalf("stdout %q: want one JSON line with an apiKey", out)
		}
		return k
	}

	out, _, code := sb(t, e, "partners", "create", "--name", "Acme Resellers")
	first := decode(out)
	if code != 0 || status(first.APIKey) != 200 {
		t.Fatalf("create: exit %d", code)
	}
	out, errOut, code := sb(t, e, "partners", "create", "--name", "acme resellers")
	// stderr holds the logs (JSON lines) and then one plain line saying why.
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if last := lines[len(lines)-1]; code != 1 || out != "" || !strings.Contains(last, "is taken") || strings.HasPrefix(last, "{") {
		t.Fatalf("a taken name: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	out, _, code = sb(t, e, "partners", "list")
	var listed struct {
		ID, Name, KeyPrefix, CreatedAt string
		RevokedAt                      *string
	}
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || listed.ID != first.ID ||
		!strings.HasPrefix(first.APIKey, listed.KeyPrefix+"_") || listed.RevokedAt != nil || strings.Contains(out, first.APIKey) {
		t.Fatalf("list: exit %d %q", code, out)
	}

	out, _, code = sb(t, e, "partners", "rotate-key", "--id", first.ID)
	second := decode(out)
	if code != 0 || second.APIKey == first.APIKey || status(second.APIKey) != 200 || status(first.APIKey) != 200 {
		t.Fatalf("rotate-key: exit %d; the old key works 24 h more, the new one at once", code)
	}
	out, _, code = sb(t, e, "partners", "rotate-key", "--id", first.ID, "--now")
	third := decode(out)
	if code != 0 || status(third.APIKey) != 200 {
		t.Fatalf("rotate-key --now: exit %d", code)
	}
	eventually(first.APIKey, 401)
	eventually(second.APIKey, 401)

	if _, errOut, code := sb(t, e, "partners", "revoke", "--id", first.ID); code != 0 {
		t.Fatalf("revoke: exit %d %s", code, errOut)
	}
	eventually(third.APIKey, 401)
	out, _, _ = sb(t, e, "partners", "list")
	if !strings.Contains(out, `"revokedAt":"20`) {
		t.Fatalf("list after revoke: %q", out)
	}
	if _, _, code := sb(t, e, "partners", "revoke", "--id", "no-such-partner"); code != 1 {
		t.Fatalf("revoke of no partner: exit %d", code)
	}
}

// TestHelpAndBadFlags: every command and sub-command has --help (exit 0,
// usage on stdout); a bad flag value is one clear line and exit 2.
func TestHelpAndBadFlags(t *testing.T) {
	e := env{"SWITCHBOARD_DATA_DIR": t.TempDir()}
	for _, args := range [][]string{
		{"--help"}, {"partners", "--help"}, {"keys", "--help"}, {"serve", "--help"}, {"purge", "--help"},
		{"partners", "create", "--help"}, {"partners", "list", "-h"}, {"partners", "rotate-key", "--help"},
		{"partners", "revoke", "--help"}, {"keys", "rewrap", "--help"},
	} {
		out, errOut, code := sb(t, e, args...)
		if code != 0 || !strings.Contains(out+errOut, "usage") && !strings.Contains(out+errOut, "Usage") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	_, errOut, code := sb(t, e, "purge", "--now", "yesterday")
	if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "RFC 3339") || strings.Contains(errOut, "parsing time") {
		t.Fatalf("bad --now: exit %d, stderr %q", code, errOut)
	}
}

// TestUnreachableMongoDB: the server says where it tries to connect, never
// the password, and gives up with one clear line.
func TestUnreachableMongoDB(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "master.agekey")
	if _, _, code := sb(t, env{}, "version"); code != 0 {
		t.Fatal("version")
	}
	// A master key file, as production has.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env{"SWITCHBOARD_ADDR": freeAddr(t), "SWITCHBOARD_MONGODB_URI": "mongodb://app:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=500",
		"SWITCHBOARD_MASTER_KEY_FILE": keyFile}
	start := time.Now()
	_, errOut, code := sb(t, e, "serve")
	if code == 0 || strings.Contains(errOut, "hunter2") || !strings.Contains(errOut, "127.0.0.1:1") ||
		!strings.Contains(errOut, "cannot reach the database") || time.Since(start) > 40*time.Second {
		t.Fatalf("exit %d after %v, stderr %q", code, time.Since(start), errOut)
	}
}
