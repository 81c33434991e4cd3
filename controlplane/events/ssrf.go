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
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 (could reach internal IPv4)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("2002::/16"),       // 6to4 (embeds any IPv4)
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
}

// publicAddr reports whether a webhook may connect to ip: not loopback,
// private (RFC 1918, fc00::/7), link-local (cloud metadata at
// 169.254.169.254), multicast, unspecified or another internal range.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
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
