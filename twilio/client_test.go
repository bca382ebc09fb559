package twilio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

const (
	masterSID   = "AC0123456789abcdef0123456789abcdef"
	masterToken = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
)

// double starts a Twilio double whose clock moves only when the returned
// function is called (one second each time).
func double(t *testing.T) (*twiliotest.Server, func()) {
	t.Helper()
	srv := twiliotest.NewServer(t, masterSID, masterToken)
	start := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	srv.SetNow(func() time.Time { return start.Add(time.Duration(offset.Load()) * time.Second) })
	return srv, func() { offset.Add(1) }
}

func newClient(t *testing.T, apiURL, token string, timeout time.Duration) *twilio.Client {
	t.Helper()
	c, err := twilio.NewClient(twilio.Config{AccountSID: masterSID, AuthToken: token, APIURL: apiURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientKeepsThePortContract(t *testing.T) {
	srv, tick := double(t)
	portContract(t, newClient(t, srv.URL(), masterToken, 2*time.Second), tick)
	if n := srv.RouteCount(twiliotest.RouteCreate); n != srv.CreateCount() || n != len(srv.Accounts()) {
		t.Fatalf("%d create requests, %d creations, %d accounts", n, srv.CreateCount(), len(srv.Accounts()))
	}
}

func TestClientSpeaksToTheDouble(t *testing.T) {
	srv, _ := double(t)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	ctx := context.Background()

	sub, err := c.CreateSubaccount(ctx, "switchboard customer 42")
	if err != nil {
		t.Fatal(err)
	}
	accounts := srv.Accounts()
	if len(accounts) != 1 {
		t.Fatalf("the double holds %d sub-accounts, want 1", len(accounts))
	}
	want := tenants.Subaccount{SID: accounts[0].SID, AuthToken: accounts[0].AuthToken, Status: tenants.SubaccountActive}
	if sub != want || accounts[0].FriendlyName != "switchboard customer 42" {
		t.Fatalf("created %q named %q, the double holds %q", sub.SID, accounts[0].FriendlyName, accounts[0].SID)
	}
	if err := c.SetSubaccountStatus(ctx, sub.SID, tenants.SubaccountSuspended); err != nil {
		t.Fatal(err)
	}
	if got := srv.Accounts()[0].Status; got != "suspended" {
		t.Fatalf("the double has %s, want suspended", got)
	}
	if _, err := c.FindSubaccount(ctx, "switchboard customer 42"); err != nil {
		t.Fatal(err)
	}
	for route, want := range map[string]int{twiliotest.RouteCreate: 1, twiliotest.RouteUpdate: 1, twiliotest.RouteList: 1, twiliotest.RouteFetch: 0} {
		if got := srv.RouteCount(route); got != want {
			t.Errorf("%s: %d requests, want %d", route, got, want)
		}
	}
	// The double lists the master account too; it is never a sub-account.
	if _, err := c.FindSubaccount(ctx, twiliotest.MasterFriendlyName); !errors.Is(err, tenants.ErrSubaccountNotFound) {
		t.Fatalf("find the master account's name: %v, want ErrNotFound", err)
	}
	// A SID Twilio does not know.
	if err := c.SetSubaccountStatus(ctx, "AC"+strings.Repeat("0", 32), tenants.SubaccountClosed); !errors.Is(err, tenants.ErrSubaccountNotFound) {
		t.Fatalf("unknown SID: %v, want ErrNotFound", err)
	}
}

func TestClientFollowsListPages(t *testing.T) {
	srv, tick := double(t)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	ctx := context.Background()
	// One more than a page: the newest is on the second page.
	var newest tenants.Subaccount
	for range 51 {
		tick()
		a, err := c.CreateSubaccount(ctx, "switchboard customer crowded")
		if err != nil {
			t.Fatal(err)
		}
		newest = a
	}
	got, err := c.FindSubaccount(ctx, "switchboard customer crowded")
	if err != nil {
		t.Fatal(err)
	}
	if got.SID != newest.SID {
		t.Fatalf("found %s, want the newest %s", got.SID, newest.SID)
	}
	if n := srv.RouteCount(twiliotest.RouteList); n != 2 {
		t.Fatalf("%d list requests, want 2 pages", n)
	}
}

func TestClientSendsEverythingToTheAPIURL(t *testing.T) {
	srv, _ := double(t)
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	// A gateway at a path prefix in front of Twilio.
	var mu sync.Mutex
	var seen []string
	proxy := httputil.NewSingleHostReverseProxy(target)
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/twilio/") {
			http.NotFound(w, r)
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/twilio")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gateway.Close)

	c := newClient(t, gateway.URL+"/twilio/", masterToken, 2*time.Second)
	sub, err := c.CreateSubaccount(context.Background(), "switchboard customer prefixed")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetSubaccountStatus(context.Background(), sub.SID, tenants.SubaccountClosed); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /twilio/2010-04-01/Accounts.json", "POST /twilio/2010-04-01/Accounts/" + sub.SID + ".json"}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("the gateway saw %v, want %v", seen, want)
	}
}

func TestClientUpstreamFailures(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(*twilio.Client, string) error{
		"create": func(c *twilio.Client, _ string) error {
			_, err := c.CreateSubaccount(ctx, "switchboard customer down")
			return err
		},
		"find": func(c *twilio.Client, _ string) error {
			_, err := c.FindSubaccount(ctx, "switchboard customer down")
			return err
		},
		"set status": func(c *twilio.Client, sid string) error {
			return c.SetSubaccountStatus(ctx, sid, tenants.SubaccountSuspended)
		},
	}
	for _, status := range []int{500, 502, 503, 429} {
		for name, call := range calls {
			t.Run(fmt.Sprintf("%s %d", name, status), func(t *testing.T) {
				srv, _ := double(t)
				c := newClient(t, srv.URL(), masterToken, 2*time.Second)
				existing, err := c.CreateSubaccount(ctx, "switchboard customer existing")
				if err != nil {
					t.Fatal(err)
				}
				srv.FailNext(1, status)
				err = call(c, existing.SID)
				if !errors.Is(err, tenants.ErrUpstreamUnavailable) || errors.Is(err, tenants.ErrSubaccountNotFound) {
					t.Fatalf("Twilio %d: %v, want only ErrUpstreamUnavailable", status, err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("status %d", status)) {
					t.Fatalf("the error does not name Twilio's status: %v", err)
				}
				if got := srv.Accounts(); len(got) != 1 || got[0].Status != "active" {
					t.Fatalf("a failed call changed Twilio: %+v", got)
				}
			})
		}
	}
}

func TestClientTimeouts(t *testing.T) {
	ctx := context.Background()
	t.Run("Twilio slower than the timeout", func(t *testing.T) {
		srv, _ := double(t)
		srv.SetDelay(3 * time.Second)
		c := newClient(t, srv.URL(), masterToken, 200*time.Millisecond)
		start := time.Now()
		_, err := c.FindSubaccount(ctx, "switchboard customer slow")
		if !errors.Is(err, tenants.ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "no answer in time") {
			t.Fatalf("slow Twilio: %v, want ErrUpstreamUnavailable (no answer in time)", err)
		}
		// Not a performance bound: only a client that gave up at its own
		// timeout returns before the 3 s answer.
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("the client waited %s", elapsed)
		}
	})
	t.Run("caller's deadline first", func(t *testing.T) {
		srv, _ := double(t)
		srv.SetDelay(3 * time.Second)
		c := newClient(t, srv.URL(), masterToken, 10*time.Second)
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.SetSubaccountStatus(short, "AC"+strings.Repeat("a", 32), tenants.SubaccountClosed)
		if !errors.Is(err, tenants.ErrUpstreamUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("caller's deadline: %v, want ErrUpstreamUnavailable and context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("the client ignored its caller's deadline for %s", elapsed)
		}
	})
	t.Run("cancelled before the call", func(t *testing.T) {
		srv, _ := double(t)
		c := newClient(t, srv.URL(), masterToken, time.Second)
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.CreateSubaccount(done, "switchboard customer never"); !errors.Is(err, context.Canceled) || !errors.Is(err, tenants.ErrUpstreamUnavailable) {
			t.Fatalf("cancelled call: %v", err)
		}
		if n := srv.CreateCount(); n != 0 {
			t.Fatalf("a cancelled call created %d sub-accounts", n)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := newClient(t, "http://"+addr, masterToken, time.Second)
		_, err = c.CreateSubaccount(ctx, "switchboard customer x")
		if !errors.Is(err, tenants.ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "connection failed") {
			t.Fatalf("no Twilio: %v", err)
		}
	})
}

func TestClientAnswersThatAreNotTwilios(t *testing.T) {
	for _, tc := range []struct {
		status   int
		body     string
		upstream bool
	}{
		{502, "<html>Bad Gateway</html>", true},
		{504, "", true},
		{200, "<html>captive portal</html>", true},
		{201, `{"sid": 7}`, true},
		{201, `{"friendly_name": "no sid"}`, true},
		{403, "<html>Forbidden by the proxy</html>", false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL, masterToken, time.Second).CreateSubaccount(context.Background(), "x")
			if err == nil || errors.Is(err, tenants.ErrUpstreamUnavailable) != tc.upstream || errors.Is(err, tenants.ErrSubaccountNotFound) {
				t.Fatalf("HTTP %d %q: %v, want upstream unavailable: %v", tc.status, tc.body, err, tc.upstream)
			}
		})
	}
}

func TestClientSubaccountLimit(t *testing.T) {
	srv, _ := double(t)
	srv.SetSubaccountLimit(1)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	ctx := context.Background()
	a, err := c.CreateSubaccount(ctx, "switchboard customer a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSubaccount(ctx, "switchboard customer b")
	if !errors.Is(err, tenants.ErrTwilioSubaccountLimit) || errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("past the limit: %v, want only ErrTwilioSubaccountLimit", err)
	}
	// Closed sub-accounts do not count, at Twilio either.
	if err := c.SetSubaccountStatus(ctx, a.SID, tenants.SubaccountClosed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubaccount(ctx, "switchboard customer b"); err != nil {
		t.Fatalf("after closing one: %v", err)
	}
}

func TestClientWrongCredentials(t *testing.T) {
	srv, _ := double(t)
	wrong := "0000000000000000000000000000000a"
	c := newClient(t, srv.URL(), wrong, 2*time.Second)
	ctx := context.Background()
	_, createErr := c.CreateSubaccount(ctx, "switchboard customer x")
	_, findErr := c.FindSubaccount(ctx, "switchboard customer x")
	setErr := c.SetSubaccountStatus(ctx, "AC"+strings.Repeat("b", 32), tenants.SubaccountClosed)
	for _, err := range []error{createErr, findErr, setErr} {
		if !isPlainRefusal(err) {
			t.Fatalf("wrong credentials: %v, want a plain refusal", err)
		}
		if !strings.Contains(err.Error(), "status 401, error 20003") {
			t.Fatalf("the error does not name Twilio's refusal: %v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), masterToken) {
			t.Fatal("the error text carries a token")
		}
	}
	if srv.CreateCount() != 0 {
		t.Fatal("an unauthenticated call created a sub-account")
	}
}

func TestClientLostCreateAnswer(t *testing.T) {
	srv, _ := double(t)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	ctx := context.Background()
	srv.LoseNextCreateAnswer()
	if _, err := c.CreateSubaccount(ctx, "switchboard customer lost"); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("lost answer: %v, want ErrUpstreamUnavailable", err)
	}
	if n := srv.CreateCount(); n != 1 {
		t.Fatalf("%d sub-accounts created, want 1", n)
	}
	// The retry finds what Twilio created, with its token.
	found, err := c.FindSubaccount(ctx, "switchboard customer lost")
	if err != nil {
		t.Fatal(err)
	}
	a := srv.Accounts()[0]
	if found != (tenants.Subaccount{SID: a.SID, AuthToken: a.AuthToken, Status: tenants.SubaccountActive}) {
		t.Fatalf("found %s, the double created %s", found.SID, a.SID)
	}
	if n := srv.CreateCount(); n != 1 {
		t.Fatalf("finding created a sub-account: %d", n)
	}
}

func TestClientIsSafeForConcurrentUse(t *testing.T) {
	srv, _ := double(t)
	c := newClient(t, srv.URL(), masterToken, 5*time.Second)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("switchboard customer p%d", i)
			a, err := c.CreateSubaccount(ctx, name)
			if err == nil {
				err = c.SetSubaccountStatus(ctx, a.SID, tenants.SubaccountSuspended)
			}
			if err == nil {
				var got tenants.Subaccount
				got, err = c.FindSubaccount(ctx, name)
				if err == nil && (got.SID != a.SID || got.Status != tenants.SubaccountSuspended) {
					err = fmt.Errorf("%s: found %s %s", name, got.SID, got.Status)
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if srv.CreateCount() != n {
		t.Fatalf("%d sub-accounts, want %d", srv.CreateCount(), n)
	}
}

func TestNewClientRefusesBadConfig(t *testing.T) {
	secret := "f0e1d2c3b4a5968778695a4b3c2d1e0f"
	for name, cfg := range map[string]twilio.Config{
		"no SID":            {AuthToken: secret},
		"no token":          {AccountSID: masterSID},
		"token with symbol": {AccountSID: masterSID, AuthToken: secret + "!"},
		"relative URL":      {AccountSID: masterSID, AuthToken: secret, APIURL: "api.twilio.com"},
		"not http":          {AccountSID: masterSID, AuthToken: secret, APIURL: "ftp://api.twilio.com"},
		"user in URL":       {AccountSID: masterSID, AuthToken: secret, APIURL: "https://u:" + secret + "@api.twilio.com"},
		"negative timeout":  {AccountSID: masterSID, AuthToken: secret, Timeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := twilio.NewClient(cfg)
			if err == nil || c != nil {
				t.Fatalf("accepted %v", cfg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatal("the error carries the token")
			}
		})
	}
	if _, err := twilio.NewClient(twilio.Config{AccountSID: masterSID, AuthToken: secret}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestConfigAndClientRedactTheToken(t *testing.T) {
	cfg := twilio.Config{AccountSID: masterSID, AuthToken: masterToken, APIURL: "https://api.twilio.com", Timeout: time.Second}
	c, err := twilio.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("twilio", "config", cfg, "client", c)
	type holder struct {
		Config twilio.Config
		Client *twilio.Client
	}
	h := holder{cfg, c}
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		fmt.Fprintf(&out, verb+"\n"+verb+"\n"+verb+"\n", cfg, c, h)
		fmt.Fprintf(&out, verb+"\n", &cfg)
	}
	printed := out.String() + logs.String()
	if strings.Contains(printed, masterToken) {
		t.Fatalf("the token was printed:\n%s", printed)
	}
	if !strings.Contains(printed, masterSID) || !strings.Contains(printed, "[redacted]") {
		t.Fatalf("the printed form says nothing useful:\n%s", printed)
	}
}

// Names with characters a query string escapes, and names twilio-go would
// mangle as a list filter (it drops every "." followed by digits from a
// query string), are found all the same.
func TestClientFindsAnyName(t *testing.T) {
	srv, _ := double(t)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	ctx := context.Background()
	for _, name := range []string{"switchboard customer v1.2", "a.1.2 & b=c?d#e", "ünïcode 1.0", "a & b=c?d#e+f%20/g"} {
		a, err := c.CreateSubaccount(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.FindSubaccount(ctx, name)
		if err != nil || got.SID != a.SID {
			t.Fatalf("find %q: %v", name, err)
		}
	}
	if srv.Accounts()[0].FriendlyName != "switchboard customer v1.2" {
		t.Fatalf("created as %q", srv.Accounts()[0].FriendlyName)
	}
}
