package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/server"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/wiring/wiringtest"
)

func get(t *testing.T, url, key string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestRouter serves the production router over an App built by
// wiring.Build, and checks what only the production configuration gives:
// readiness on the store, the runtime's metrics, the erasure keys and
// messaging routes, and list cursors that a second router over the same
// master key (a restart, another instance) still accepts.
func TestRouter(t *testing.T) {
	p := wiringtest.New(t, wiringtest.Options{})
	srv := p.Serve(t, server.Router(p.App, server.Options{}))
	ctx := t.Context()
	partner, key, err := p.Tenants.CreatePartner(ctx, "Partner")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		in := tenants.RegisterInput{Space: fmt.Sprintf("space-%d", i), IndustryID: tenants.Industries()[0].ID, Label: "L"}
		if _, err := p.Tenants.Register(ctx, partner, in); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("ready", func(t *testing.T) {
		if code, body := get(t, srv.URL+"/readyz", ""); code != http.StatusOK {
			t.Fatalf("readyz: %d %s", code, body)
		}
	})
	t.Run("runtime metrics", func(t *testing.T) {
		code, body := get(t, srv.URL+"/metrics", "")
		if code != http.StatusOK || !strings.Contains(string(body), "go_goroutines") {
			t.Fatalf("metrics: %d, go_goroutines missing", code)
		}
	})
	t.Run("erasure keys", func(t *testing.T) {
		if code, body := get(t, srv.URL+"/.well-known/erasure-keys.json", ""); code != http.StatusOK {
			t.Fatalf("erasure keys: %d %s", code, body)
		}
	})
	t.Run("messaging routes", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/v1/webhooks/twilio/inbound", "application/x-www-form-urlencoded", strings.NewReader("MessageSid=x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden { // unsigned: refused, not unrouted
			t.Fatalf("unsigned inbound callback: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("cursor outlives the router", func(t *testing.T) {
		code, body := get(t, srv.URL+"/v1/customers?limit=1", key)
		var page struct {
			NextCursor *string `json:"nextCursor"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &page) != nil || page.NextCursor == nil {
			t.Fatalf("first page: %d %s", code, body)
		}
		other := httptest.NewServer(server.Router(p.App, server.Options{}))
		defer other.Close()
		if code, body := get(t, other.URL+"/v1/customers?limit=1&cursor="+*page.NextCursor, key); code != http.StatusOK {
			t.Fatalf("the cursor on another router: %d %s", code, body)
		}
	})
}
