package ami

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultAddr          = "127.0.0.1:5038"
	DefaultEvents        = "on"
	DefaultActionTimeout = 4 * time.Second // the legacy hangup endpoint's AMI timeout
	DefaultDialTimeout   = 5 * time.Second
	DefaultPingInterval  = 20 * time.Second
	DefaultReconnectMin  = 500 * time.Millisecond
	DefaultReconnectMax  = 30 * time.Second
	DefaultHealthyAfter  = 30 * time.Second
	// DefaultSubscriptionBuffer is used by Subscribe for a size <= 0.
	DefaultSubscriptionBuffer = 1024
)

// Config of a Client. Zero values take the defaults above.
type Config struct {
	Addr          string        // host:port; default "127.0.0.1:5038"
	Username      string        // AMI user (manager.conf section)
	Secret        string        // never logged
	AuthMD5       bool          // Challenge + MD5 Key login instead of a plain Secret
	Events        string        // Login "Events:" mask; default "on" ("off", or e.g. "call,cdr")
	ActionTimeout time.Duration // default 4s: applied when the ctx of an action has no earlier deadline
	DialTimeout   time.Duration // default 5s (TCP connect + banner + login)
	PingInterval  time.Duration // keepalive; default 20s; a failed keepalive tears the connection down
	ReconnectMin  time.Duration // default 500ms
	ReconnectMax  time.Duration // default 30s (capped exponential backoff with full jitter)
	HealthyAfter  time.Duration // a session that lived this long resets the backoff; default 30s
	// MaxMessageBytes bounds one received message; default DefaultMaxMessageBytes.
	MaxMessageBytes int
	Logger          *slog.Logger // nil: discard
	Now             func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Events == "" {
		c.Events = DefaultEvents
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.ActionTimeout, DefaultActionTimeout)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.PingInterval, DefaultPingInterval)
	setDur(&c.ReconnectMin, DefaultReconnectMin)
	setDur(&c.ReconnectMax, DefaultReconnectMax)
	setDur(&c.HealthyAfter, DefaultHealthyAfter)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports what is wrong with c; zero values count as their
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("Addr %q: want host:port: %w", c.Addr, err))
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("Addr %q: port must be 1-65535", c.Addr))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("Username is empty"))
	}
	for _, h := range []Header{{"Username", c.Username}, {"Secret", c.Secret}, {"Events", c.Events}} {
		if h.Value == "" {
			continue
		}
		if err := checkHeader(h); err != nil {
			// Do not echo the secret: only say which field is unusable.
			errs = append(errs, fmt.Errorf("%s cannot be sent on the AMI wire: %w", h.Key, errors.Unwrap(err)))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ActionTimeout", c.ActionTimeout}, {"DialTimeout", c.DialTimeout}, {"PingInterval", c.PingInterval},
		{"ReconnectMin", c.ReconnectMin}, {"ReconnectMax", c.ReconnectMax}, {"HealthyAfter", c.HealthyAfter},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%v)", d.name, d.v))
		}
	}
	if c.ReconnectMin > c.ReconnectMax {
		errs = append(errs, fmt.Errorf("ReconnectMin %v is above ReconnectMax %v", c.ReconnectMin, c.ReconnectMax))
	}
	if c.MaxMessageBytes < MaxLineBytes {
		errs = append(errs, fmt.Errorf("MaxMessageBytes %d is below %d", c.MaxMessageBytes, MaxLineBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ami config: %w", err)
	}
	return nil
}

// SessionInfo describes the current (or last) AMI session.
type SessionInfo struct {
	AMIVersion  string    // from the banner, e.g. "11.0.0"
	ConnectedAt time.Time // zero when never connected
	LastError   string    // why the last session or connect attempt ended; kept after a reconnect
}

// Client is one persistent, logged-in AMI connection shared by many
// concurrent callers. Actions are matched to responses by an ActionID the
// client generates; events fan out to subscriptions.
type Client struct {
	cfg Config
	log *slog.Logger

	// idPrefix makes our ActionIDs unique across clients and restarts, so
	// a response meant for another manager session is never mistaken for
	// ours; the counter keeps them unique within the client.
	idPrefix string
	idSeq    atomic.Uint64

	sess atomic.Pointer[session]

	subMu sync.Mutex
	subs  atomic.Pointer[[]*Subscription]

	infoMu sync.Mutex
	info   SessionInfo

	closeCtx context.Context
	closeFn  context.CancelFunc
	mu       sync.Mutex // guards closed, running and wg.Add against Close
	closed   bool
	running  bool
	wg       sync.WaitGroup
}

// New validates cfg, fills its defaults and returns a client that is not
// connected yet: call Run (reconnecting) or use Dial (one session).
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("ami: action id prefix: %w", err)
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "ami"),
		idPrefix: "sb-" + hex.EncodeToString(rnd[:]) + "-",
	}
	c.closeCtx, c.closeFn = context.WithCancel(context.Background())
	c.subs.Store(&[]*Subscription{})
	return c, nil
}

// Dial connects and logs in once, without reconnecting: when this session
// ends the client stays disconnected (actions fail with ErrNotConnected).
// ctx bounds the connect and login only; Close ends the session.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		return nil, err
	}
	s, err := c.connect(ctx)
	if err != nil {
		c.wg.Done()
		c.Close()
		return nil, err
	}
	c.activate(s)
	go func() {
		defer c.wg.Done()
		c.serve(c.closeCtx, s)
	}()
	return c, nil
}

// start registers the caller as the one goroutine that owns sessions.
func (c *Client) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case c.running:
		return errors.New("ami: client is already running")
	}
	c.running = true
	c.wg.Add(1)
	return nil
}

// Run connects, logs in and serves the session; when it ends, Run
// reconnects with capped, jittered exponential backoff until ctx ends (it
// then returns ctx.Err()) or the client is closed (ErrClosed).
func (c *Client) Run(ctx context.Context) error {
	if err := c.start(); err != nil {
		return err
	}
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.closeCtx, cancel)
	defer stop()

	bo := newBackoff(c.cfg.ReconnectMin, c.cfg.ReconnectMax)
	for {
		s, err := c.connect(ctx)
		if err == nil {
			c.activate(s)
			lived := c.serve(ctx, s)
			if lived >= c.cfg.HealthyAfter {
				bo.reset()
			}
		}
		if ctx.Err() != nil {
			break
		}
		delay := bo.next()
		c.log.Info("ami reconnecting", "addr", c.cfg.Addr, "in", delay.Round(time.Millisecond), "attempt", bo.attempt)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	if c.closeCtx.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// Close ends the session and Run, fails in-flight actions, closes every
// subscription and waits for the client's goroutines. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	c.closeFn()
	c.wg.Wait()
	if !already {
		c.subMu.Lock()
		subs := *c.subs.Load()
		c.subs.Store(&[]*Subscription{})
		c.subMu.Unlock()
		for _, s := range subs {
			s.stop()
		}
	}
	return nil
}

// Connected reports whether a logged-in session is up right now.
func (c *Client) Connected() bool { return c.sess.Load() != nil }

// Info returns facts about the current or last session.
func (c *Client) Info() SessionInfo {
	c.infoMu.Lock()
	defer c.infoMu.Unlock()
	return c.info
}

func (c *Client) setLastError(err error) {
	c.infoMu.Lock()
	c.info.LastError = err.Error()
	c.infoMu.Unlock()
}

// current returns the live session or the reason there is none.
func (c *Client) current() (*session, error) {
	if s := c.sess.Load(); s != nil {
		return s, nil
	}
	if c.closeCtx.Err() != nil {
		return nil, ErrClosed
	}
	return nil, ErrNotConnected
}
