package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
)

// connFlags are the HTTP server's connection limits and timeouts, all
// named and documented in the README ("Limits and abuse").
type connFlags struct {
	headerTimeout, idleTimeout  time.Duration
	bodyTimeout, writeTimeout   time.Duration
	maxConns, reserved, perIP   int
	exempt                      string
	reserveTimeout, evictWaited time.Duration
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.headerTimeout, "http-header-timeout", controlplane.DefaultReadHeaderTimeout, "a request's headers (and the TLS handshake) must arrive within this; else the connection is closed")
	fs.DurationVar(&f.idleTimeout, "http-idle-timeout", controlplane.DefaultIdleTimeout, "a keep-alive connection idle this long is closed (agent tunnels and event WebSockets are not)")
	fs.DurationVar(&f.bodyTimeout, "http-body-timeout", api.DefaultBodyTimeout, "a request body must arrive within this after its headers (408, connection closed)")
	fs.DurationVar(&f.writeTimeout, "http-write-timeout", api.DefaultWriteTimeout, "a response must be sent within this (the connection is closed past it)")
	fs.IntVar(&f.maxConns, "max-connections", 0, "open connections at most, agent tunnels included; 0: the open-files limit less 128; -1: no bound")
	fs.IntVar(&f.reserved, "reserved-connections", 0, "of --max-connections, kept for agent tunnels and /healthz, /readyz (0: a tenth)")
	fs.IntVar(&f.perIP, "max-connections-per-ip", controlplane.DefaultMaxConnsPerIP, "connections from one address at most, agent tunnels excepted; 0: no bound")
	fs.StringVar(&f.exempt, "connection-limit-exempt", "127.0.0.0/8,::1/128", "addresses or CIDR prefixes (comma-separated) not bounded by --max-connections-per-ip: your load balancers or reverse proxies; empty: none")
	fs.DurationVar(&f.reserveTimeout, "reserved-connection-timeout", connlimit.DefaultReserveTimeout, "a connection admitted into the reserve must become an agent tunnel or finish its health check within this")
	fs.DurationVar(&f.evictWaited, "evict-waiting-after", connlimit.DefaultEvictAfter, "at --max-connections, a new connection evicts the one that has waited longest with no request in progress, if it waited this long; negative: never")
}

// apply sets the connection limits and timeouts in cfg (cfg.API built).
func (f connFlags) apply(cfg *controlplane.Config) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--http-header-timeout", f.headerTimeout}, {"--http-idle-timeout", f.idleTimeout}, {"--http-body-timeout", f.bodyTimeout},
		{"--http-write-timeout", f.writeTimeout}, {"--reserved-connection-timeout", f.reserveTimeout},
	} {
		if d.v <= 0 {
			return usagef("%s must be positive", d.flag)
		}
	}
	if f.maxConns < -1 || f.reserved < 0 || f.perIP < 0 {
		return usagef("--max-connections (-1 or more), --reserved-connections and --max-connections-per-ip (0 or more) out of range")
	}
	exempt, err := parsePrefixes(f.exempt)
	if err != nil {
		return usagef("--connection-limit-exempt: %v", err)
	}
	cfg.ReadHeaderTimeout, cfg.IdleTimeout = f.headerTimeout, f.idleTimeout
	cfg.API.BodyTimeout, cfg.API.WriteTimeout = f.bodyTimeout, f.writeTimeout
	cfg.Conns = controlplane.ConnLimits{
		Max: f.maxConns, Reserve: f.reserved, PerIP: f.perIP, Exempt: exempt,
		ReserveTimeout: f.reserveTimeout, EvictAfter: f.evictWaited,
	}
	if f.perIP == 0 {
		cfg.Conns.PerIP = -1 // the flag's 0 is "none"; the Config's, the default
	}
	return nil
}

// parsePrefixes reads "10.0.0.5, 192.168.0.0/16, ::1": addresses or CIDR
// prefixes; never nil (none is an empty list).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
