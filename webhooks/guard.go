package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Guard decides which addresses a webhook delivery may reach.
type Guard struct {
	// AllowPrivate lets endpoints be http, and private addresses (never link-local, multicast, unspecified).
	AllowPrivate bool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
}

// Resolver resolves a host name to its addresses (net.Resolver is one).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrRefusedAddress is wrapped by every refusal of an address or URL.
var ErrRefusedAddress = errors.New("webhook address refused")

// maxURLLen is the longest endpoint URL accepted, in bytes.
const maxURLLen = 2048

func refuse(reason string) error { return fmt.Errorf("%w: %s", ErrRefusedAddress, reason) }

// addrRule is one row of the special-purpose address table.
type addrRule struct {
	prefix netip.Prefix
	never  bool // refused even when AllowPrivate is set
	reason string
}

// specialPurpose lists the blocks that are not globally reachable according to
// the IANA IPv4 and IPv6 Special-Purpose Address Registries
// (https://www.iana.org/assignments/iana-ipv4-special-registry/ and
// https://www.iana.org/assignments/iana-ipv6-special-registry/, RFC 6890),
// plus multicast (IANA multicast registries, RFC 5771, RFC 4291) and reserved
// space (240.0.0.0/4, RFC 1112). Rows marked never are refused even when
// AllowPrivate is set. IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96),
// NAT64 (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16, RFC 3056) addresses are
// judged by the IPv4 address they embed before this table is consulted.
var specialPurpose = []addrRule{
	{netip.MustParsePrefix("0.0.0.0/8"), true, "unspecified address"},
	{netip.MustParsePrefix("169.254.0.0/16"), true, "link-local address"},
	{netip.MustParsePrefix("224.0.0.0/4"), true, "multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), true, "broadcast address"},
	{netip.MustParsePrefix("::/128"), true, "unspecified address"},
	{netip.MustParsePrefix("fe80::/10"), true, "link-local address"},
	{netip.MustParsePrefix("ff00::/8"), true, "multicast address"},
	// Local-use NAT64 (RFC 8215): the embedded IPv4 cannot be judged reliably.
	{netip.MustParsePrefix("64:ff9b:1::/48"), true, "reserved address"},

	{netip.MustParsePrefix("10.0.0.0/8"), false, "private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), false, "private address"},
	{netip.MustParsePrefix("127.0.0.0/8"), false, "loopback address"},
	{netip.MustParsePrefix("172.16.0.0/12"), false, "private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), false, "reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), false, "documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), false, "reserved address"},
	{netip.MustParsePrefix("192.168.0.0/16"), false, "private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), false, "benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), false, "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), false, "documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), false, "reserved address"},
	{netip.MustParsePrefix("::1/128"), false, "loopback address"},
	{netip.MustParsePrefix("100::/64"), false, "reserved address"},
	{netip.MustParsePrefix("2001::/23"), false, "reserved address"},
	{netip.MustParsePrefix("2001:db8::/32"), false, "documentation address"},
	{netip.MustParsePrefix("3fff::/20"), false, "documentation address"},
	{netip.MustParsePrefix("5f00::/16"), false, "reserved address"},
	{netip.MustParsePrefix("fc00::/7"), false, "private address"},
	{netip.MustParsePrefix("fec0::/10"), false, "reserved address"},
}

// globalUnicast6 is the only IPv6 space allocated for global unicast (RFC 4291).
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// embeddedIPv4 returns the IPv4 address carried by an IPv4-compatible, NAT64
// or 6to4 IPv6 address.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified() || a == netip.IPv6Loopback():
		return netip.Addr{}, false
	case netip.MustParsePrefix("::/96").Contains(a), netip.MustParsePrefix("64:ff9b::/96").Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// checkAddr reports whether a delivery may connect to a.
func (g Guard) checkAddr(a netip.Addr) error {
	if !a.IsValid() {
		return refuse("invalid address")
	}
	a = a.WithZone("").Unmap()
	if v4, ok := embeddedIPv4(a); ok {
		return g.checkAddr(v4)
	}
	switch {
	case a.IsUnspecified():
		return refuse("unspecified address")
	case a.IsLinkLocalUnicast():
		return refuse("link-local address")
	case a.IsMulticast():
		return refuse("multicast address")
	}
	private := ""
	for _, r := range specialPurpose {
		if !r.prefix.Contains(a) {
			continue
		}
		if r.never {
			return refuse(r.reason)
		}
		if private == "" {
			private = r.reason
		}
	}
	switch {
	case private != "":
	case a.IsLoopback():
		private = "loopback address"
	case a.IsPrivate():
		private = "private address"
	case a.Is6() && !globalUnicast6.Contains(a):
		private = "reserved address"
	}
	if private != "" && !g.AllowPrivate {
		return refuse(private)
	}
	return nil
}

// lookup returns the addresses of host (a literal IP is its own answer).
func (g Guard) lookup(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	var r interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	} = net.DefaultResolver
	if g.Resolver != nil {
		r = g.Resolver
	}
	addrs, err := r.LookupNetIP(ctx, network, host)
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, err
}

// CheckURL validates an endpoint URL at create/update time: absolute, scheme https (or http when AllowPrivate), a host, no user info, no fragment, at most 2048 bytes, and every address its host resolves to (or the literal IP) allowed. The error wraps ErrRefusedAddress with a short reason a client can read (no internal details); a DNS failure is also a refusal ("host does not resolve").
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > maxURLLen {
		return refuse("url is longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return refuse("url is not valid")
	}
	switch {
	case !u.IsAbs():
		return refuse("url must be absolute")
	case u.Scheme != "https" && !(u.Scheme == "http" && g.AllowPrivate):
		return refuse("url scheme must be https")
	case u.User != nil:
		return refuse("url must not contain user info")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return refuse("url must not contain a fragment")
	case u.Hostname() == "":
		return refuse("url must have a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return refuse("url port is not valid")
		}
	}
	addrs, err := g.lookup(ctx, "ip", u.Hostname())
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return refuse("host does not resolve")
	}
	for _, a := range addrs {
		if err := g.checkAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// control is the net.Dialer hook: it checks the address actually dialled.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse("invalid address")
	}
	return g.checkAddr(ap.Addr())
}

// dialContext resolves address once, checks every answer and dials the
// checked addresses in order, so DNS cannot change between check and connect.
func (g Guard) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("webhooks: invalid port %q", portStr)
	}
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	addrs, err := g.lookup(ctx, ipNet, host)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := g.checkAddr(a); err != nil {
			return nil, err
		}
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// Client returns the HTTP client deliveries use: no proxy (Proxy nil, never from the environment), redirects not followed (CheckRedirect returns http.ErrUseLastResponse), the given overall timeout, keep-alives on, TLS default. Its DialContext resolves the host with g.Resolver, checks EVERY address (any refused address refuses the whole host), then dials the checked addresses in order with net.Dialer (so there is no second DNS lookup DNS rebinding could change); a net.Dialer.Control hook checks once more the address actually dialled (belt and braces). Refusals wrap ErrRefusedAddress.
func (g Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           g.dialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   8, // perEndpoint attempts in flight keep their connections
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
	}
}
