package api

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchboard/switchboard/store/storetest"
	"github.com/switchboard/switchboard/tenants"
)

// chromium finds Debian's headless browser. CI installs it (.ci/run); on a
// machine without it the browser test says how to get it and skips, except
// under CI, where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("no chromium on this machine: apt-get install chromium to render /docs in a real browser")
	return ""
}

// TestDocsRenderInABrowser loads /docs in headless Chromium, lets Redoc
// render /openapi.yaml, and finds every operation of the document in the
// page it built.
func TestDocsRenderInABrowser(t *testing.T) {
	browser := chromium(t)
	db := storetest.MustOpen(t)
	srv := httptest.NewServer(NewRouter(Config{Tenants: tenants.NewService(tenants.Config{Control: db.Control}),
		Registry: prometheus.NewRegistry(), Logger: storetest.Logger()}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=20000", "--dump-dom", srv.URL+"/docs").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)

	var spec struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &spec); err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, ops := range spec.Paths {
		for method, node := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				OperationID string `yaml:"operationId"`
			}
			if err := node.Decode(&op); err != nil || op.OperationID == "" {
				t.Fatalf("%s %s: no operationId", method, path)
			}
			n++
			if !strings.Contains(dom, `id="operation/`+op.OperationID+`"`) {
				t.Errorf("the rendered page lacks %s %s (operation/%s)", strings.ToUpper(method), path, op.OperationID)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d operations in the document", n)
	}
}
