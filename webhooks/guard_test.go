package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a function of the host and the call number.
type fakeResolver struct {
	calls  atomic.Int32
	answer func(call int, host string) ([]netip.Addr, error)
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return r.answer(int(r.calls.Add(1)), host)
}

func staticResolver(m map[string][]string) *fakeResolver {
	return &fakeResolver{answer: func(_ int, host string) ([]netip.Addr, error) {
		ss, ok := m[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}}
}

const (
	classPublic  = iota // allowed always
	classPrivate        // allowed only with AllowPrivate
	classNever          // refused always
)

func TestGuardAddressClasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr  string
		class int
	}{
		{"8.8.8.8", classPublic}, {"1.1.1.1", classPublic}, {"2606:4700::1111", classPublic},
		{"2001:4860:4860::8888", classPublic}, {"::ffff:8.8.8.8", classPublic}, {"64:ff9b::808:808", classPublic},
		{"11.0.0.1", classPublic}, {"100.128.0.1", classPublic}, {"172.32.0.1", classPublic}, {"169.255.0.1", classPublic},
		{"198.20.0.1", classPublic}, {"223.255.255.255", classPublic}, {"2001:200::1", classPublic},

		{"127.0.0.1", classPrivate}, {"127.255.255.254", classPrivate}, {"::1", classPrivate}, {"::ffff:127.0.0.1", classPrivate},
		{"10.0.0.1", classPrivate}, {"::ffff:10.0.0.1", classPrivate}, {"172.16.0.1", classPrivate}, {"172.31.255.255", classPrivate},
		{"192.168.1.1", classPrivate}, {"100.64.0.1", classPrivate}, {"100.127.255.255", classPrivate},
		{"fc00::1", classPrivate}, {"fd12:3456::1", classPrivate}, {"192.0.0.1", classPrivate}, {"192.0.2.1", classPrivate},
		{"198.18.0.1", classPrivate}, {"198.19.255.255", classPrivate}, {"198.51.100.7", classPrivate}, {"203.0.113.9", classPrivate},
		{"240.0.0.1", classPrivate}, {"2001:db8::1", classPrivate}, {"3fff::1", classPrivate}, {"100::1", classPrivate},
		{"2001::1", classPrivate}, {"2001:1ff::1", classPrivate}, {"64:ff9b::7f00:1", classPrivate}, {"::7f00:1", classPrivate},
		{"2002:7f00:1::1", classPrivate}, {"fec0::1", classPrivate}, {"4000::1", classPrivate},

		{"169.254.169.254", classNever}, {"169.254.0.1", classNever}, {"fe80::1", classNever}, {"fe80::1%eth0", classNever},
		{"::ffff:169.254.169.254", classNever}, {"::ffff:a9fe:a9fe", classNever}, {"64:ff9b::a9fe:a9fe", classNever},
		{"::a9fe:a9fe", classNever}, {"2002:a9fe:a9fe::1", classNever}, {"224.0.0.1", classNever}, {"239.255.255.250", classNever},
		{"ff02::1", classNever}, {"ff0e::1", classNever}, {"::ffff:224.0.0.1", classNever}, {"0.0.0.0", classNever},
		{"0.1.2.3", classNever}, {"::", classNever}, {"::ffff:0.0.0.0", classNever}, {"255.255.255.255", classNever},
		{"64:ff9b:1::a00:1", classNever},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			a := netip.MustParseAddr(tc.addr)
			host := a.String()
			if a.Is6() {
				host = "[" + strings.Replace(host, "%", "%25", 1) + "]"
			}
			for _, allow := range []bool{false, true} {
				g := Guard{AllowPrivate: allow, Resolver: staticResolver(nil)}
				wantOK := tc.class == classPublic || (tc.class == classPrivate && allow)
				err := g.checkAddr(a)
				if (err == nil) != wantOK || (err != nil && !errors.Is(err, ErrRefusedAddress)) {
					t.Errorf("checkAddr(%s) AllowPrivate=%v: err=%v, want allowed=%v", tc.addr, allow, err, wantOK)
				}
				if err := g.CheckURL(context.Background(), "https://"+host+"/hook"); (err == nil) != wantOK {
					t.Errorf("CheckURL(%s) AllowPrivate=%v: err=%v, want allowed=%v", host, allow, err, wantOK)
				}
			}
		})
	}
}

func TestCheckURLShape(t *testing.T) {
	t.Parallel()
	res := staticResolver(map[string][]string{"hook.example": {"8.8.8.8"}})
	cases := []struct {
		raw          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hook.example/hooks?x=1", false, true},
		{"https://8.8.8.8:8443/", false, true},
		{"https://[::ffff:a9fe:a9fe]/", true, false},
		{"http://hook.example/", false, false},
		{"http://hook.example/", true, true},
		{"ftp://hook.example/", true, false},
		{"/hooks", false, false},
		{"hook.example/hooks", false, false},
		{"https://", false, false},
		{"https:hook.example", false, false},
		{"https://user:pw@hook.example/", false, false},
		{"https://hook.example/#frag", false, false},
		{"https://hook.example/#", false, false},
		{"https://hook.example:0/", false, false},
		{"https://hook.example:99999/", false, false},
		{"https://hook.example/%zz", false, false},
		{"https://hook.example/" + strings.Repeat("a", 2048-len("https://hook.example/")), false, true},
		{"https://hook.example/" + strings.Repeat("a", 2049-len("https://hook.example/")), false, false},
	}
	for _, tc := range cases {
		g := Guard{AllowPrivate: tc.allowPrivate, Resolver: res}
		err := g.CheckURL(context.Background(), tc.raw)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrRefusedAddress)) {
			t.Errorf("CheckURL(%.60q) AllowPrivate=%v: err=%v, want ok=%v", tc.raw, tc.allowPrivate, err, tc.ok)
		}
	}
}

func TestCheckURLResolvedAddresses(t *testing.T) {
	t.Parallel()
	res := staticResolver(map[string][]string{
		"hook.example":  {"8.8.8.8", "10.0.0.1"},
		"pub.example":   {"8.8.8.8", "2606:4700::1111"},
		"meta.example":  {"169.254.169.254"},
		"lan.example":   {"10.0.0.1", "fd00::1"},
		"empty.example": {},
	})
	cases := []struct {
		host         string
		allowPrivate bool
		wantErr      string // "" means allowed
	}{
		{"hook.example", false, "private address"},
		{"hook.example", true, ""},
		{"pub.example", false, ""},
		{"meta.example", true, "link-local address"},
		{"lan.example", false, "private address"},
		{"lan.example", true, ""},
		{"nx.example", true, "host does not resolve"},
		{"empty.example", true, "host does not resolve"},
	}
	for _, tc := range cases {
		g := Guard{AllowPrivate: tc.allowPrivate, Resolver: res}
		err := g.CheckURL(context.Background(), "https://"+tc.host+"/")
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s AllowPrivate=%v: unexpected %v", tc.host, tc.allowPrivate, err)
		case tc.wantErr != "" && (!errors.Is(err, ErrRefusedAddress) || !strings.Contains(fmt.Sprint(err), tc.wantErr)):
			t.Errorf("%s AllowPrivate=%v: err=%v, want refusal %q", tc.host, tc.allowPrivate, err, tc.wantErr)
		case err != nil && strings.ContainsAny(err.Error(), "0123456789"):
			t.Errorf("%s: refusal leaks an address: %v", tc.host, err)
		}
	}
}

// hitServer counts the requests it receives.
func hitServer(t *testing.T, tls bool, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	f := func(w http.ResponseWriter, r *http.Request) { hits.Add(1); h(w, r) }
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f))
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

func serverPort(t *testing.T, srv *httptest.Server) string {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

func TestGuardClientRebind(t *testing.T) {
	t.Parallel()
	srv, hits := hitServer(t, true, func(w http.ResponseWriter, r *http.Request) {})
	res := &fakeResolver{answer: func(call int, _ string) ([]netip.Addr, error) {
		if call == 1 {
			return []netip.Addr{netip.MustParseAddr("8.8.8.8")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}}
	g := Guard{Resolver: res}
	target := "https://hook.example:" + serverPort(t, srv) + "/"
	if err := g.CheckURL(context.Background(), target); err != nil {
		t.Fatalf("CheckURL: %v", err)
	}
	resp, err := g.Client(5 * time.Second).Get(target)
	if err == nil {
		resp.Body.Close()
		t.Fatal("request after rebinding to 127.0.0.1 succeeded")
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) || !errors.Is(uerr, ErrRefusedAddress) {
		t.Fatalf("err = %v, want *url.Error wrapping ErrRefusedAddress", err)
	}
	if hits.Load() != 0 {
		t.Fatal("server was reached")
	}
	// A literal private address is refused at connection too.
	_, err = Guard{AllowPrivate: false}.Client(5 * time.Second).Get(srv.URL)
	if !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("literal loopback: err = %v, want refusal", err)
	}
}

func TestGuardClientConnectsToCheckedAddress(t *testing.T) {
	t.Parallel()
	var gotHost atomic.Value
	srv, _ := hitServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		fmt.Fprint(w, "ok")
	})
	g := Guard{AllowPrivate: true, Resolver: staticResolver(map[string][]string{"hook.example": {"127.0.0.1"}})}
	hostport := "hook.example:" + serverPort(t, srv)
	resp, err := g.Client(5 * time.Second).Get("http://" + hostport + "/")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || gotHost.Load() != hostport {
		t.Fatalf("status %d, Host %v; want 200 and %s", resp.StatusCode, gotHost.Load(), hostport)
	}
}

func TestGuardClientRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target, targetHits := hitServer(t, false, func(w http.ResponseWriter, r *http.Request) {})
	redir, _ := hitServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/stolen", http.StatusFound)
	})
	g := Guard{AllowPrivate: true, Resolver: staticResolver(map[string][]string{"hook.example": {"127.0.0.1"}})}
	resp, err := g.Client(5 * time.Second).Get("http://hook.example:" + serverPort(t, redir) + "/")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != target.URL+"/stolen" {
		t.Fatalf("status %d Location %q, want 302 as is", resp.StatusCode, resp.Header.Get("Location"))
	}
	if targetHits.Load() != 0 {
		t.Fatal("redirect was followed")
	}
}

func TestGuardControlHookAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr         string
		allowPrivate bool
		ok           bool
	}{
		{"8.8.8.8:443", false, true},
		{"127.0.0.1:80", false, false},
		{"127.0.0.1:80", true, true},
		{"[::ffff:169.254.169.254]:80", true, false},
		{"[fe80::1%eth0]:80", true, false},
		{"not-an-address", true, false},
	}
	for _, tc := range cases {
		err := Guard{AllowPrivate: tc.allowPrivate}.control("tcp", tc.addr, nil)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrRefusedAddress)) {
			t.Errorf("control(%s) AllowPrivate=%v: err=%v, want ok=%v", tc.addr, tc.allowPrivate, err, tc.ok)
		}
	}
}

func TestGuardClientConfig(t *testing.T) {
	t.Parallel()
	c := Guard{}.Client(7 * time.Second)
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil || tr.DialContext == nil || tr.DisableKeepAlives || tr.TLSClientConfig != nil {
		t.Fatalf("unexpected transport %#v", c.Transport)
	}
	if c.Timeout != 7*time.Second || c.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Fatal("timeout or redirect policy wrong")
	}
}
