package connlimit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// Reasons a connection was shed, as Observer.ConnShed reports them.
const (
	ShedPerIP          = "per_ip"          // refused: its address holds MaxPerIP
	ShedFull           = "full"            // refused: MaxConns are open
	ShedEvicted        = "evicted"         // closed to admit a new one: it waited EvictAfter with no request in progress
	ShedReservedPath   = "reserved_path"   // a reserve connection asked for another path (503)
	ShedReserveTimeout = "reserve_timeout" // a reserve connection made no reserved request in time
	ShedHeaderTimeout  = "header_timeout"  // request headers not received within the server's ReadHeaderTimeout
	ShedIdleTimeout    = "idle_timeout"    // a keep-alive connection idle for the server's IdleTimeout
	// Reported by the HTTP chain (package api), which reads bodies:
	ShedBodyTimeout = "body_timeout" // a request body not received within its time (408, closed)
	ShedUnreadBody  = "unread_body"  // answered without reading the body (e.g. a 401): closed rather than drained
)

// Defaults of Config.
const (
	DefaultReserveTimeout = 5 * time.Second
	DefaultEvictAfter     = 2 * time.Second
)

// ErrReserveOnly is Admit's refusal of a request on a reserve connection
// to a path that is not reserved: the server is at its connection bound
// for general clients (answer 503; the connection is closed after it).
var ErrReserveOnly = errors.New("server at its connection limit: retry shortly")

// Observer is told when a connection is shed (metrics); it must not block.
type Observer interface {
	ConnShed(reason string)
}

type nopObserver struct{}

func (nopObserver) ConnShed(string) {}

// Config of a Limiter; see the package documentation for how the limits
// work together.
type Config struct {
	// MaxConns bounds the open connections; keep it below the process's
	// open-files limit, with room for the store's connections and files.
	// Zero: no bound (and no reserve or eviction).
	MaxConns int
	// Reserve is the part of MaxConns general clients never get: kept for
	// ReservedPaths.
	Reserve int
	// ReservedPaths are the request paths a reserve connection may ask
	// for; a hijacked request to one makes its connection a tunnel.
	ReservedPaths []string
	// MaxPerIP bounds one remote address's connections, tunnels excepted;
	// zero: no bound.
	MaxPerIP int
	// Exempt addresses are not bounded per address (load balancers,
	// reverse proxies: every client comes from them).
	Exempt []netip.Prefix
	// ReserveTimeout: a reserve connection that has not become a tunnel
	// or finished its reserved request within it is closed.
	ReserveTimeout time.Duration
	// EvictAfter: when general connections are at their bound, the one
	// that has waited longest with no request in progress is closed to
	// admit a new one, if it has waited this long. Negative: never.
	EvictAfter time.Duration
	Observer   Observer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConns < 0 || c.Reserve < 0 || c.MaxPerIP < 0 {
		errs = append(errs, fmt.Errorf("connection limits must not be negative (max %d, reserve %d, per IP %d)", c.MaxConns, c.Reserve, c.MaxPerIP))
	}
	if c.MaxConns > 0 && c.Reserve >= c.MaxConns {
		errs = append(errs, fmt.Errorf("reserved connections %d must be fewer than the maximum %d", c.Reserve, c.MaxConns))
	}
	if c.ReserveTimeout < 0 {
		errs = append(errs, fmt.Errorf("reserve timeout %v is negative", c.ReserveTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("connection limits: %w", err)
	}
	return nil
}

// Stats are the connections open now, by class.
type Stats struct {
	General, Reserve, Tunnels int
}

// Limiter tracks the connections of the listeners it wraps. It is safe
// for concurrent use.
type Limiter struct {
	cfg      Config
	reserved map[string]bool

	mu      sync.Mutex
	count   [numClasses]int
	perIP   map[netip.Addr]int
	waiting list.List // general connections with no request in progress, oldest first
}

// New validates cfg and fills its defaults.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReserveTimeout == 0 {
		cfg.ReserveTimeout = DefaultReserveTimeout
	}
	if cfg.EvictAfter == 0 {
		cfg.EvictAfter = DefaultEvictAfter
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, reserved: map[string]bool{}, perIP: map[netip.Addr]int{}}
	for _, p := range cfg.ReservedPaths {
		l.reserved[p] = true
	}
	return l, nil
}

// Config is the limiter's configuration, defaults filled.
func (l *Limiter) Config() Config { return l.cfg }

// Stats counts the open connections by class.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{General: l.count[classGeneral], Reserve: l.count[classReserve], Tunnels: l.count[classTunnel]}
}

type class uint8

const (
	classGeneral class = iota
	classReserve
	classTunnel
	numClasses
)

type state uint8

const (
	stateWaiting  state = iota // accepted or idle: no request in progress
	stateServing               // a handler runs
	stateHijacked              // the handler took the connection over
)

// conn is one admitted connection.
type conn struct {
	net.Conn
	l *Limiter

	// Guarded by l.mu.
	class    class
	state    state
	ip       netip.Addr
	ipCount  bool // counted in l.perIP
	since    time.Time
	elem     *list.Element // in l.waiting
	path     string        // of the request in progress
	requests int
	released bool
	timer    *time.Timer // a reserve connection's deadline

	closeOnce sync.Once
	closeErr  error
}

// Listener wraps ln: connections past the limits are closed as they are
// accepted and Accept goes on to the next.
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Limiter
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		nc, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := ln.l.admitConn(nc); c != nil {
			return c, nil
		}
	}
}

// admitConn classifies a new connection, or refuses it (nil).
func (l *Limiter) admitConn(nc net.Conn) *conn {
	c := &conn{Conn: nc, l: l, ip: remoteIP(nc)}
	c.ipCount = l.cfg.MaxPerIP > 0 && c.ip.IsValid() && !l.exempt(c.ip)
	now := l.cfg.Now()
	var victim *conn
	reason := ""
	l.mu.Lock()
	switch {
	case c.ipCount && l.perIP[c.ip] >= l.cfg.MaxPerIP:
		reason = ShedPerIP
	case l.cfg.MaxConns <= 0 || l.count[classGeneral] < l.generalCap() && l.total() < l.cfg.MaxConns:
		c.class = classGeneral
	default:
		if victim = l.evictableLocked(now); victim != nil {
			l.releaseLocked(victim)
		}
		switch {
		case l.count[classGeneral] < l.generalCap() && l.total() < l.cfg.MaxConns:
			c.class = classGeneral
		case l.total() < l.cfg.MaxConns:
			c.class = classReserve
		default:
			reason = ShedFull
		}
	}
	if reason == "" {
		l.count[c.class]++
		if c.ipCount {
			l.perIP[c.ip]++
		}
		c.since = now
		if c.class == classGeneral {
			c.elem = l.waiting.PushBack(c)
		} else {
			c.timer = time.AfterFunc(l.cfg.ReserveTimeout, c.reserveExpired)
		}
	}
	l.mu.Unlock()
	if victim != nil {
		l.cfg.Observer.ConnShed(ShedEvicted)
		victim.closeNet()
	}
	if reason != "" {
		l.cfg.Observer.ConnShed(reason)
		refuse(nc)
		return nil
	}
	return c
}

// refuse closes a connection at once, with a reset rather than a FIN so
// that a flood of them leaves no TIME_WAIT state here.
func refuse(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

func (l *Limiter) total() int {
	return l.count[classGeneral] + l.count[classReserve] + l.count[classTunnel]
}

// generalCap is how many general connections may be open: what MaxConns
// leaves after the reserve and the tunnels (agents come first).
func (l *Limiter) generalCap() int {
	return l.cfg.MaxConns - l.cfg.Reserve - l.count[classTunnel]
}

// evictableLocked returns the general connection that has waited longest
// with no request in progress, if it has waited EvictAfter.
func (l *Limiter) evictableLocked(now time.Time) *conn {
	if l.cfg.EvictAfter < 0 {
		return nil
	}
	e := l.waiting.Front()
	if e == nil {
		return nil
	}
	c := e.Value.(*conn)
	if now.Sub(c.since) < l.cfg.EvictAfter {
		return nil
	}
	return c
}

func (l *Limiter) exempt(ip netip.Addr) bool {
	return slices.ContainsFunc(l.cfg.Exempt, func(p netip.Prefix) bool { return p.Contains(ip) })
}

func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// releaseLocked takes c out of every count, once.
func (l *Limiter) releaseLocked(c *conn) {
	if c.released {
		return
	}
	c.released = true
	l.count[c.class]--
	if c.ipCount {
		if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
			delete(l.perIP, c.ip)
		}
	}
	if c.elem != nil {
		l.waiting.Remove(c.elem)
		c.elem = nil
	}
	if c.timer != nil {
		c.timer.Stop()
	}
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.closeNet()
}

func (c *conn) closeNet() error {
	c.closeOnce.Do(func() { c.closeErr = c.Conn.Close() })
	return c.closeErr
}

// Read reports the server's header and idle timeouts (it closes the
// connection after either, saying nothing).
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.l.mu.Lock()
		waiting, served := c.state == stateWaiting && !c.released, c.requests > 0
		c.l.mu.Unlock()
		if waiting {
			reason := ShedHeaderTimeout
			if served {
				reason = ShedIdleTimeout
			}
			c.l.cfg.Observer.ConnShed(reason)
		}
	}
	return n, err
}

func (c *conn) reserveExpired() {
	c.l.mu.Lock()
	expired := !c.released && c.class == classReserve && c.state != stateHijacked
	c.l.mu.Unlock()
	if expired {
		c.l.cfg.Observer.ConnShed(ShedReserveTimeout)
		c.Close()
	}
}

// ConnContext is the http.Server's ConnContext: it lets Admit find the
// request's connection.
func (l *Limiter) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c := l.unwrap(nc); c != nil {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

type connKey struct{}

// unwrap finds the limiter's conn under a TLS connection.
func (l *Limiter) unwrap(nc net.Conn) *conn {
	for {
		switch x := nc.(type) {
		case *conn:
			if x.l == l {
				return x
			}
			return nil
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return nil
		}
	}
}

// ConnState is the http.Server's ConnState hook: it sees a connection
// go idle between requests and be hijacked.
func (l *Limiter) ConnState(nc net.Conn, st http.ConnState) {
	c := l.unwrap(nc)
	if c == nil {
		return
	}
	closeIt := false
	l.mu.Lock()
	switch {
	case c.released:
	case st == http.StateHijacked:
		c.state = stateHijacked
		if l.reserved[c.path] && c.class != classTunnel {
			// An agent tunnel: it counts against MaxConns only.
			l.count[c.class]--
			if c.ipCount {
				if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
					delete(l.perIP, c.ip)
				}
				c.ipCount = false
			}
			c.class = classTunnel
			l.count[classTunnel]++
			if c.timer != nil {
				c.timer.Stop()
			}
		}
	case st == http.StateIdle && c.class == classReserve:
		closeIt = true // its one reserved request is answered
	case st == http.StateIdle:
		c.state, c.since = stateWaiting, l.cfg.Now()
		if c.elem == nil {
			c.elem = l.waiting.PushBack(c)
		}
	}
	l.mu.Unlock()
	if closeIt {
		c.Close()
	}
}

// Admit is called by the HTTP chain when a request's headers are read,
// before its handler: the connection has a request in progress (it is no
// longer evictable). A reserve connection gets `Connection: close`, and
// ErrReserveOnly unless the path is reserved. A request on a connection
// no Limiter tracks is admitted.
func Admit(w http.ResponseWriter, r *http.Request) error {
	c, ok := r.Context().Value(connKey{}).(*conn)
	if !ok {
		return nil
	}
	l := c.l
	l.mu.Lock()
	c.state, c.path = stateServing, r.URL.Path
	c.requests++
	if c.elem != nil {
		l.waiting.Remove(c.elem)
		c.elem = nil
	}
	reserve := c.class == classReserve
	l.mu.Unlock()
	if !reserve {
		return nil
	}
	w.Header().Set("Connection", "close")
	if !l.reserved[r.URL.Path] {
		l.cfg.Observer.ConnShed(ShedReservedPath)
		return ErrReserveOnly
	}
	return nil
}
