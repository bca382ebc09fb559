package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// runScript runs scripts/retention-purge with the given binary and args.
func runScript(t *testing.T, bin, lock, dataDir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("../../scripts/retention-purge", args...)
	cmd.Env = append(os.Environ(), "SWITCHBOARD_BIN="+bin, "SWITCHBOARD_PURGE_LOCK="+lock, "SWITCHBOARD_DATA_DIR="+dataDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func TestRetentionPurgeScript(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Fatalf("flock(1) is required by scripts/retention-purge: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	lock := filepath.Join(dir, "purge.lock")
	data := filepath.Join(dir, "data")

	out, code := runScript(t, bin, lock, data, "--dry-run", "--now", "2099-01-01T00:00:00Z")
	if code != 0 {
		t.Fatalf("dry run exit %d\n%s", code, out)
	}
	stamped := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \{"summary":\{"due":0,"shredded":0,"failed":0,"dryRun":true\}\}$`)
	if !stamped.MatchString(out) {
		t.Fatalf("no timestamped summary line:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT`).MatchString(line) {
			t.Fatalf("line without a timestamp: %q", line)
		}
	}

	// The purge's exit code is kept: a usage error is 2.
	if _, code := runScript(t, bin, lock, data, "--bogus"); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
	// A purge that fails a customer exits 1, and so does the wrapper.
	failing := filepath.Join(dir, "failing")
	os.WriteFile(failing, []byte("#!/bin/sh\necho '{\"summary\":{\"due\":1,\"shredded\":0,\"failed\":1,\"dryRun\":false}}'\nexit 1\n"), 0o755)
	if _, code := runScript(t, failing, lock, data); code != 1 {
		t.Fatalf("failing purge: exit %d, want 1", code)
	}

	// No overlapping runs: while another holds the lock, a run skips.
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	out, code = runScript(t, failing, lock, data)
	if code != 0 || !strings.Contains(out, "skipping") || strings.Contains(out, "summary") {
		t.Fatalf("overlapping run: exit %d\n%s", code, out)
	}
}
