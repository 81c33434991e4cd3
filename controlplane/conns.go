package controlplane

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Defaults of the HTTP server's connection handling.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long
	// (clients such as Go's keep theirs 90 s and redial).
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxConnsPerIP bounds one address's connections, agent
	// tunnels excepted.
	DefaultMaxConnsPerIP = 256
	// FDHeadroom is what the default MaxConns leaves of the open-files
	// limit for the store's connections, its files, logs and the metrics
	// listener.
	FDHeadroom = 128
	// minAutoConns is the least the default MaxConns takes.
	minAutoConns = 32
)

// DefaultConnExempt are the addresses not bounded per address by default:
// loopback, where a reverse proxy on the same host connects from.
var DefaultConnExempt = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ConnLimits bound the main listener's connections (see package
// connlimit): zero values take the defaults named here, negative turns a
// limit off.
type ConnLimits struct {
	// Max bounds the open connections. Zero: the process's open-files
	// limit less FDHeadroom.
	Max int
	// Reserve is the part of Max only agent tunnels and health checks
	// (/agent/v1/connect, /healthz, /readyz) may use. Zero: a tenth of
	// Max.
	Reserve int
	// PerIP bounds one remote address's connections, agent tunnels
	// excepted. Zero: DefaultMaxConnsPerIP.
	PerIP int
	// Exempt addresses are not bounded per address (a load balancer in
	// front). Nil: DefaultConnExempt; empty: none.
	Exempt []netip.Prefix
	// ReserveTimeout: a reserve connection that has not become an agent
	// tunnel or finished its health check within it is closed. Zero:
	// connlimit.DefaultReserveTimeout.
	ReserveTimeout time.Duration
	// EvictAfter: at the bound, a new connection evicts the one that has
	// waited longest with no request in progress, if it has waited this
	// long. Zero: connlimit.DefaultEvictAfter.
	EvictAfter time.Duration
}

// ReservedPaths are the requests a reserve connection may make.
var ReservedPaths = []string{protocol.ConnectPath, "/healthz", "/readyz"}

// connlimit is the listener's configuration: the defaults resolved
// against nofile, the open-files limit (0: unknown), and validated by
// connlimit (a reserve not below the maximum, a negative reserve timeout).
func (c ConnLimits) connlimit(nofile uint64) (connlimit.Config, error) {
	out := connlimit.Config{ReservedPaths: ReservedPaths, ReserveTimeout: c.ReserveTimeout, EvictAfter: c.EvictAfter, Exempt: c.Exempt}
	switch {
	case c.Max > 0:
		out.MaxConns = c.Max
	case c.Max == 0 && nofile > FDHeadroom+minAutoConns:
		out.MaxConns = int(min(nofile-FDHeadroom, 1<<30))
	case c.Max == 0 && nofile > 0:
		return out, fmt.Errorf("the open-files limit %d leaves too few connections after %d for the store and files: raise it (LimitNOFILE=) or set the maximum connections", nofile, FDHeadroom)
	}
	switch {
	case out.MaxConns == 0:
	case c.Reserve > 0:
		out.Reserve = c.Reserve
	case c.Reserve == 0:
		out.Reserve = max(1, out.MaxConns/10)
	}
	switch {
	case c.PerIP > 0:
		out.MaxPerIP = c.PerIP
	case c.PerIP == 0:
		out.MaxPerIP = DefaultMaxConnsPerIP
	}
	if c.Exempt == nil {
		out.Exempt = DefaultConnExempt
	}
	return out, out.Validate()
}
