package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenTarget: a webhook URL resolves to an address webhooks may
// not reach (see Config.AllowPrivateTargets).
var ErrForbiddenTarget = errors.New("webhook target address not allowed")

// blockedPrefixes are internal ranges not covered by netip's predicates.
// Prefixes that embed an IPv4 address (NAT64, 6to4, Teredo, IPv4-compatible
// and IPv4-translated) are not here: embeddedIPv4 classifies them by the
// address they carry.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64: where the IPv4 sits depends on the local prefix length
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
}

// IPv6 ranges that carry an IPv4 address, and where.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // ::a.b.c.d (deprecated, RFC 4291)
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // ::ffff:0:a.b.c.d (SIIT, RFC 2765)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // well-known NAT64 prefix (RFC 6052)
	sixToFour      = netip.MustParsePrefix("2002::/16")       // 2002:aabb:ccdd::/48 (RFC 3056)
	teredo         = netip.MustParsePrefix("2001::/32")       // server in bits 32-63, client inverted in 96-127 (RFC 4380)
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address reaches by one
// of the transition mechanisms: a packet to it ends up at (or is relayed
// through) those IPv4 hosts, so the IPv6 address is only as public as
// they are. IPv4-mapped addresses (::ffff:a.b.c.d) are Unmap's job.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() || ip.Is4In6() {
		return nil
	}
	b := ip.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]}) }
	switch {
	case ipv4Compatible.Contains(ip), ipv4Translated.Contains(ip), nat64.Contains(ip):
		return []netip.Addr{v4(12)}
	case sixToFour.Contains(ip):
		return []netip.Addr{v4(2)}
	case teredo.Contains(ip):
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return []netip.Addr{v4(4), client}
	}
	return nil
}

// publicAddr reports whether a webhook may connect to ip: not loopback,
// private (RFC 1918, fc00::/7), link-local (cloud metadata at
// 169.254.169.254), multicast, unspecified or another internal range, nor
// an IPv6 address that embeds such an IPv4 address (::127.0.0.1,
// ::ffff:0:7f00:1, 64:ff9b::a00:1, 2002:7f00:1::, Teredo). A scoped
// address (fe80::1%eth0) is never public.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	for _, v4 := range embeddedIPv4(ip) {
		if !publicAddr(v4) {
			return false
		}
	}
	return true
}

// checkWebhookURL validates a webhook URL as given by a client: http or
// https, a host, no credentials or fragment, and (unless private targets
// are allowed) a host whose every address is public. The dialer checks
// again at each connection, so a DNS answer that changes later (DNS
// rebinding) gains nothing.
func checkWebhookURL(ctx context.Context, raw string, allowPrivate bool, resolver *net.Resolver) error {
	u, err := url.Parse(raw)
	if err != nil {
		return invalidf("url: not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalidf("url: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return invalidf("url: has no host")
	}
	if u.User != nil {
		return invalidf("url: must not carry credentials; the signature authenticates deliveries")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalidf("url: must not have a fragment")
	}
	if allowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !publicAddr(ip) {
			return invalidf("url: %s is a loopback, private or internal address; webhooks must reach a public address", host)
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return invalidf("url: %s is a loopback name", host)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := resolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return invalidf("url: host %s does not resolve", host)
	}
	for _, a := range addrs {
		if !publicAddr(a) {
			return invalidf("url: %s resolves to %s, a loopback, private or internal address", host, a.Unmap())
		}
	}
	return nil
}

// guardControl is a net.Dialer Control that refuses non-public addresses:
// it sees the address actually dialled, after DNS.
func guardControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenTarget, address)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenTarget, ap.Addr().Unmap())
	}
	return nil
}
