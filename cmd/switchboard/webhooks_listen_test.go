package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/webhooks"
)

// The receiver is checked with deliveries signed by webhooks.Sign, the
// signer Switchboard's deliveries use.

const listenBody = "{\n  \"id\": \"evt_1\",\n  \"type\": \"message.delivered\",\n  \"data\": {\"text\": \"a <b> & c\"}\n}\n"

func listenSecret(t *testing.T) string {
	t.Helper()
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// receiver is the handler for secrets, over an httptest server.
func receiver(t *testing.T, secrets ...string) (base string, stdout, stderr *syncBuffer) {
	t.Helper()
	list := make([]secret, len(secrets))
	for i, s := range secrets {
		list[i] = secret(s)
	}
	verifiers, err := webhookVerifiers(list)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	srv := httptest.NewServer(newWebhookReceiver(verifiers, stdout, newLogger(stderr, slog.LevelInfo)))
	t.Cleanup(srv.Close)
	return srv.URL, stdout, stderr
}

// deliver posts body with headers signed by secrets at at; edit, if
// given, changes the request before it goes.
func deliver(t *testing.T, base string, secrets []string, id string, at time.Time, body string, edit func(*http.Request)) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := webhooks.Headers(req.Header, secrets, id, at, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func wantLine(id string, at time.Time) string {
	return fmt.Sprintf(`{"webhookId":%q,"timestamp":%d,"event":{"id":"evt_1","type":"message.delivered","data":{"text":"a <b> & c"}}}`+"\n", id, at.Unix())
}

func TestWebhooksListenPrintsVerifiedDelivery(t *testing.T) {
	s := listenSecret(t)
	base, stdout, _ := receiver(t, s)
	at := time.Now()
	if code := deliver(t, base, []string{s}, "evt_1", at, listenBody, nil); code != http.StatusNoContent {
		t.Fatalf("verified delivery answered %d", code)
	}
	if got := stdout.String(); got != wantLine("evt_1", at) {
		t.Fatalf("stdout %q\nwant   %q", got, wantLine("evt_1", at))
	}
	var line struct {
		WebhookID string         `json:"webhookId"`
		Timestamp int64          `json:"timestamp"`
		Event     map[string]any `json:"event"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &line); err != nil || line.Event["type"] != "message.delivered" {
		t.Fatalf("line %+v %v", line, err)
	}
}

func TestWebhooksListenAnySecretMayMatch(t *testing.T) {
	newest, older := listenSecret(t), listenSecret(t)
	base, stdout, _ := receiver(t, older, newest)
	at := time.Now()
	// Signed with both (during a rotation), then with each alone.
	for i, signers := range [][]string{{newest, older}, {newest}, {older}} {
		id := "evt_" + strconv.Itoa(i)
		if code := deliver(t, base, signers, id, at, listenBody, nil); code != http.StatusNoContent {
			t.Fatalf("delivery %d answered %d", i, code)
		}
		if !strings.HasSuffix(stdout.String(), wantLine(id, at)) {
			t.Fatalf("delivery %d: stdout %q", i, stdout.String())
		}
	}
	if n := strings.Count(stdout.String(), "\n"); n != 3 {
		t.Fatalf("%d lines for 3 deliveries: %q", n, stdout.String())
	}
}

func TestWebhooksListenRefusesBadDeliveries(t *testing.T) {
	s := listenSecret(t)
	base, stdout, stderr := receiver(t, s)
	now := time.Now()
	for _, c := range []struct {
		name    string
		secrets []string
		at      time.Time
		body    string
		edit    func(*http.Request)
		want    int
	}{
		{"bad signature", []string{s}, now, listenBody, func(r *http.Request) {
			r.Header.Set("webhook-signature", "v1,"+strings.Repeat("A", 43)+"=")
		}, http.StatusBadRequest},
		{"another secret", []string{listenSecret(t)}, now, listenBody, nil, http.StatusBadRequest},
		{"tampered body", []string{s}, now, listenBody, func(r *http.Request) {
			b := strings.Replace(listenBody, "delivered", "failed", 1)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
		}, http.StatusBadRequest},
		{"another id", []string{s}, now, listenBody, func(r *http.Request) { r.Header.Set("webhook-id", "evt_2") }, http.StatusBadRequest},
		{"10 minutes old", []string{s}, now.Add(-10 * time.Minute), listenBody, nil, http.StatusBadRequest},
		{"no signature", []string{s}, now, listenBody, func(r *http.Request) { r.Header.Del("webhook-signature") }, http.StatusBadRequest},
		{"verified but not JSON", []string{s}, now, "not json", nil, http.StatusBadRequest},
		{"not a POST", []string{s}, now, "", func(r *http.Request) { r.Method = http.MethodGet }, http.StatusMethodNotAllowed},
	} {
		before := strings.Count(stderr.String(), "\n")
		if code := deliver(t, base, c.secrets, "evt_1", c.at, c.body, c.edit); code != c.want {
			t.Errorf("%s: answered %d, want %d", c.name, code, c.want)
		}
		if strings.Count(stderr.String(), "\n") <= before {
			t.Errorf("%s: nothing on stderr", c.name)
		}
	}
	if stdout.String() != "" {
		t.Fatalf("refused deliveries printed %q", stdout.String())
	}
	if strings.Contains(stderr.String(), strings.TrimPrefix(s, "whsec_")) {
		t.Fatal("stderr shows the secret")
	}
}

// TestWebhooksListenCommand runs `switchboard webhooks listen` in-process
// on a free port, delivers once and stops it as SIGTERM would (main turns
// the signal into ctx's end).
func TestWebhooksListenCommand(t *testing.T) {
	s := listenSecret(t)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"webhooks", "listen", "--addr", "127.0.0.1:0"}, env{"SWITCHBOARD_SECRET": s}.get, stdout, stderr)
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		for _, l := range strings.Split(stderr.String(), "\n") {
			var rec struct{ Addr string }
			if json.Unmarshal([]byte(l), &rec) == nil && rec.Addr != "" {
				addr = rec.Addr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("listen exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	at := time.Now()
	if code := deliver(t, "http://"+addr, []string{s}, "evt_9", at, listenBody, nil); code != http.StatusNoContent {
		t.Fatalf("answered %d\n%s", code, stderr.String())
	}
	if code := deliver(t, "http://"+addr, []string{listenSecret(t)}, "evt_10", at, listenBody, nil); code != http.StatusBadRequest {
		t.Fatalf("a wrong secret answered %d", code)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("listen returned %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("listen did not stop")
	}
	if got := stdout.String(); got != wantLine("evt_9", at) {
		t.Fatalf("stdout %q", got)
	}
}

func TestWebhooksListenFlags(t *testing.T) {
	good := listenSecret(t)
	for name, args := range map[string][]string{
		"no secret":       {"webhooks", "listen"},
		"no prefix":       {"webhooks", "listen", "--secret", strings.TrimPrefix(good, "whsec_")},
		"not base64":      {"webhooks", "listen", "--secret", good, "--secret", "whsec_%%%"},
		"unknown command": {"webhooks", "send"},
		"no command":      {"webhooks"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args, env{}.get, &stdout, &stderr)
		var ec exitError
		if !errors.As(err, &ec) || ec.code != 2 || stdout.Len() != 0 {
			t.Errorf("%s: %v, stdout %q", name, err, stdout.String())
		}
		if strings.Contains(stderr.String(), "%%%") || strings.Contains(stderr.String(), strings.TrimPrefix(good, "whsec_")) {
			t.Errorf("%s: stderr shows a secret: %s", name, stderr.String())
		}
	}
	var l secretList
	if err := l.Set("whsec_a, whsec_b"); err != nil || len(l) != 2 || l[1] != "whsec_b" {
		t.Fatalf("secrets %q %v", []secret(l), err)
	}
	if s := fmt.Sprintf("%v %s", l, l); strings.Contains(s, "whsec") {
		t.Fatalf("the secret list prints: %s", s)
	}
}
