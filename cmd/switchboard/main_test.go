package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// env is a fake environment for run.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// running is a running `switchboard serve`.
type running struct {
	base   string
	stop   context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

func startServer(t *testing.T, e env) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &running{base: "http://" + e["SWITCHBOARD_ADDR"], stop: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	go func() { s.done <- run(ctx, []string{"serve"}, e.get, io.Discard, s.stderr) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-s.done:
			t.Fatalf("server exited while starting: %v\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

func (s *running) shutdown(t *testing.T) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("server did not shut down")
	}
}

func (s *running) call(t *testing.T, method, path, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

func cli(t *testing.T, e env, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, e.get, &stdout, &stderr)
	if err != nil {
		t.Logf("switchboard %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// scan fails the test if any file under dir contains any marker.
func scan(t *testing.T, dir string, markers []string) {
	t.Helper()
	var files int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, m := range markers {
			if bytes.Contains(b, []byte(m)) {
				t.Errorf("plaintext %q found in %s", m, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("scanned only %d files under %s", files, dir)
	}
}

// TestEndToEnd drives the binary's commands the way the README does: a
// server on the embedded engine, partners create and purge attached to it,
// no plaintext at rest while running and after stop, and everything still
// readable after a restart on the same data dir.
func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	e := env{"SWITCHBOARD_ADDR": freeAddr(t), "SWITCHBOARD_DATA_DIR": dir}
	srv := startServer(t, e)

	out, err := cli(t, e, "partners", "create", "--name", "Acme Resellers")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("partners create printed %q, want exactly one line", out)
	}
	var partner struct{ ID, Name, APIKey string }
	if err := json.Unmarshal([]byte(out), &partner); err != nil || partner.APIKey == "" || partner.Name != "Acme Resellers" {
		t.Fatalf("partners create: %q (%v)", out, err)
	}
	key := partner.APIKey

	industry := "8f56c423-943d-5275-bb9f-9db8783c6dad" // NAICS 11, the same on every deployment
	markers := []string{"MARKER-LABEL-7f3a9c", "MARKER-BUSINESS-51d2e8", "MARKER-ADDRESS-c04b66"}
	st, c := srv.call(t, "POST", "/v1/customers", key, map[string]any{"space": "marker", "industryId": industry, "label": markers[0]})
	if st != 201 {
		t.Fatalf("register: %d %v", st, c)
	}
	id := c["id"].(string)
	if st, c = srv.call(t, "POST", "/v1/customers/"+id+"/activate", key, map[string]any{"expectedVersion": 1}); st != 200 {
		t.Fatalf("activate: %d %v", st, c)
	}
	st, c = srv.call(t, "PUT", "/v1/customers/"+id+"/contact-info", key, map[string]any{
		"expectedVersion": 2, "businessName": markers[1], "addressLine1": markers[2],
		"postalCode": "M5V 2T6", "province": "ON", "country": "CA",
	})
	if st != 200 || c["contactInfo"].(map[string]any)["businessName"] != markers[1] {
		t.Fatalf("contact info: %d %v", st, c)
	}
	// A second customer stays to be read after the restart.
	st, keep := srv.call(t, "POST", "/v1/customers", key, map[string]any{"space": "keeper", "industryId": industry, "label": "MARKER-KEEP-99ab01"})
	if st != 201 {
		t.Fatalf("register keeper: %d %v", st, keep)
	}
	markers = append(markers, "MARKER-KEEP-99ab01")

	// A tenant app's contacts: sealed too.
	st, app := srv.call(t, "POST", "/v1/customers", key, map[string]any{"space": "app", "industryId": industry, "label": "App"})
	appID := app["id"].(string)
	srv.call(t, "POST", "/v1/customers/"+appID+"/activate", key, map[string]any{})
	st, tok := srv.call(t, "POST", "/v1/customers/"+appID+"/tokens", key, map[string]any{"subject": "app-user"})
	if st != 201 {
		t.Fatalf("mint: %d %v", st, tok)
	}
	jwt := tok["accessToken"].(string)
	contactMarkers := []string{"Zqmarkerfirst", "Zqmarkerlast", "marker-email-1f3b@example.com", "+14155550177", "MARKER-ATTR-77aa", "marker-crm-5e1d"}
	st, up := srv.call(t, "POST", "/v1/contacts", jwt, map[string]any{"mode": "Add", "matchBy": "email", "data": []any{map[string]any{
		"email": contactMarkers[2], "firstName": contactMarkers[0], "lastName": contactMarkers[1], "phone": contactMarkers[3],
		"crmId": contactMarkers[5], "customAttributes": []any{map[string]any{"name": "note", "value": contactMarkers[4]}},
	}}})
	if st != 200 || up["results"].([]any)[0].(map[string]any)["outcome"] != "created" {
		t.Fatalf("upsert: %d %v", st, up)
	}
	markers = append(markers, contactMarkers...)
	scan(t, dir, markers)
	// Customers share a fixed set of files: none is the customer's own.
	if own, _ := filepath.Glob(filepath.Join(dir, "db", "sb_*")); len(own) != 0 {
		t.Fatalf("per-customer database files: %v", own)
	}
	st, c = srv.call(t, "POST", "/v1/customers/"+appID+"/terminate", key, map[string]any{"retention": map[string]any{"strategy": "NO_RETENTION"}})
	if st != 200 || c["status"] != "SHREDDED" {
		t.Fatalf("NO_RETENTION: %d %v", st, c)
	}
	// Its tokens are refused at once on this instance: 410, it is shredded.
	if st, c = srv.call(t, "GET", "/v1/contacts", jwt, nil); st != 410 || c["code"] != "data_shredded" {
		t.Fatalf("token of a shredded customer answered %d %v", st, c)
	}

	st, c = srv.call(t, "POST", "/v1/customers/"+id+"/terminate", key, map[string]any{
		"expectedVersion": 3, "retention": map[string]any{"strategy": "TEMPORARY", "period": 1},
	})
	if st != 200 || c["status"] != "TERMINATED" {
		t.Fatalf("terminate: %d %v", st, c)
	}
	shredAt := c["retention"].(map[string]any)["shredAt"].(string)

	// The purge attaches to the running server's engine.
	out, err = cli(t, e, "purge", "--dry-run", "--now", "2099-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"customerId":%q,"shredAt":%q,"outcome":"would_shred"}`+"\n"+
		`{"summary":{"due":1,"shredded":0,"failed":0,"dryRun":true}}`+"\n", id, shredAt)
	if out != want {
		t.Fatalf("dry run printed\n%s\nwant\n%s", out, want)
	}
	out, err = cli(t, e, "purge", "--now", "2099-01-01T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf(`{"customerId":%q,"shredAt":%q,"outcome":"shredded"}`+"\n"+
		`{"summary":{"due":1,"shredded":1,"failed":0,"dryRun":false}}`+"\n", id, shredAt)
	if out != want {
		t.Fatalf("purge printed\n%s\nwant\n%s", out, want)
	}
	st, c = srv.call(t, "GET", "/v1/customers/"+id, key, nil)
	if st != 200 || c["status"] != "SHREDDED" || c["label"] != nil || c["contactInfo"] != nil || c["version"] != float64(5) {
		t.Fatalf("after purge: %d %v", st, c)
	}

	srv.shutdown(t)
	scan(t, dir, markers)
	if _, err := os.Stat(filepath.Join(dir, "mongo.sock")); err == nil {
		t.Fatal("socket left behind after a clean stop")
	}

	// Restart on the same data dir: everything still readable.
	srv = startServer(t, e)
	st, c = srv.call(t, "GET", "/v1/customers/"+keep["id"].(string), key, nil)
	if st != 200 || c["label"] != "MARKER-KEEP-99ab01" {
		t.Fatalf("after restart: %d %v", st, c)
	}
	st, c = srv.call(t, "GET", "/v1/customers/"+id, key, nil)
	if st != 200 || c["status"] != "SHREDDED" {
		t.Fatalf("shredded customer after restart: %d %v", st, c)
	}
	if strings.Contains(srv.stderr.String(), key) || strings.Contains(srv.stderr.String(), "MARKER-") ||
		strings.Contains(srv.stderr.String(), "marker") || strings.Contains(srv.stderr.String(), "eyJ") {
		t.Fatal("the server logged a key or personal data")
	}
}

func TestRefusesToStartWithoutMasterKeyOutsideEmbeddedMode(t *testing.T) {
	e := env{
		"SWITCHBOARD_ADDR":        freeAddr(t),
		"SWITCHBOARD_DATA_DIR":    t.TempDir(),
		"SWITCHBOARD_MONGODB_URI": "mongodb://127.0.0.1:1/",
	}
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"serve"}, e.get, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "SWITCHBOARD_MASTER_KEY_FILE is required") {
		t.Fatalf("serve without a master key file: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"version"}, env{}.get, &stdout, &stderr); err != nil || stdout.String() != version+"\n" {
		t.Fatalf("version: %q %v", stdout.String(), err)
	}
	if err := run(t.Context(), []string{"bogus"}, env{}.get, &stdout, &stderr); err == nil {
		t.Fatal("unknown command accepted")
	}
	stdout.Reset()
	if err := run(t.Context(), []string{"partners", "create"}, env{}.get, &stdout, &stderr); err == nil || stdout.Len() != 0 {
		t.Fatalf("partners create without --name: %v, stdout %q", err, stdout.String())
	}
	if err := run(t.Context(), []string{"purge", "--now", "yesterday"}, env{}.get, &stdout, &stderr); err == nil {
		t.Fatal("purge accepted a bad --now")
	}
}

func TestEnvironmentFillsFlags(t *testing.T) {
	var cfg config
	fs := newFlagSet("serve", &cfg, true, io.Discard)
	e := env{"SWITCHBOARD_ADDR": "0.0.0.0:9999", "SWITCHBOARD_DATA_DIR": "/from/env", "SWITCHBOARD_TWILIO_AUTH_TOKEN": "tok"}
	if err := parseFlags(fs, []string{"--data-dir", "/from/flag"}, e.get); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "0.0.0.0:9999" || cfg.DataDir != "/from/flag" || cfg.TwilioAuthToken != "tok" {
		t.Fatalf("config %+v", cfg)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.TwilioAuthToken); strings.Contains(s, "tok") {
		t.Fatalf("config prints its secret: %s", s)
	}
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // as main does
	os.Exit(m.Run())
}
