package tunnel

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Defaults filled in by Dial and Accept for zero Config fields.
const (
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultKeepAliveInterval      = 15 * time.Second
	DefaultConnectionWriteTimeout = 10 * time.Second
	// DefaultAcceptBacklog is how many opened streams may wait for Accept.
	// yamux also lets a side have at most this many streams opened but not
	// yet acknowledged, so both ends should use the same value.
	DefaultAcceptBacklog = 256
)

// StreamWindowBytes is the yamux receive window of every stream: the most
// one stream may have in flight before the reader drains it. It is also
// yamux's minimum, so it bounds the largest yamux data frame a peer may
// send us.
const StreamWindowBytes = 256 << 10

// yamuxHeaderBytes is the fixed size of a yamux frame header.
const yamuxHeaderBytes = 12

// DefaultMaxMessageBytes is the WebSocket read limit for one message. yamux
// writes a frame as a 12-byte header followed by a body of at most one
// stream window (StreamWindowBytes, 256 KiB); today it does that in two
// Write calls, i.e. two WebSocket messages, but a coalescing writer would
// make one message of 12 B + 256 KiB = 262,156 bytes. The limit must admit
// that or a large payload kills the session with "message too big" (the
// coder/websocket default of 32 KiB would). The limit is per message and
// messages are streamed into yamux, so a higher value costs no memory.
const DefaultMaxMessageBytes = yamuxHeaderBytes + StreamWindowBytes

// minMaxMessageBytes is the smallest read limit that cannot break yamux.
const minMaxMessageBytes = yamuxHeaderBytes + StreamWindowBytes

// DialConfig configures the agent's side of the tunnel.
type DialConfig struct {
	// URL is ws:// or wss://host/agent/v1/connect (protocol.ConnectPath).
	URL string
	// Token is the agent token, sent as "Authorization: Bearer <token>".
	// It is never logged.
	Token string
	// RootCAs verifies the control plane's certificate; nil means the
	// system roots. See LoadCAFile.
	RootCAs *x509.CertPool
	// HandshakeTimeout bounds only the TCP/TLS/WebSocket handshake; the
	// session itself lives as long as Dial's ctx.
	HandshakeTimeout time.Duration
	// KeepAliveInterval is how often yamux pings the peer. A ping not
	// answered within ConnectionWriteTimeout kills the session, so a
	// vanished peer is noticed after at most the sum of the two.
	KeepAliveInterval time.Duration
	// ConnectionWriteTimeout bounds every write to the connection and the
	// wait for a keepalive answer.
	ConnectionWriteTimeout time.Duration
	// MaxMessageBytes is the WebSocket read limit; see
	// DefaultMaxMessageBytes for why it cannot be small.
	MaxMessageBytes int64
	// AcceptBacklog: see DefaultAcceptBacklog.
	AcceptBacklog int
	// Logger receives the tunnel's (and yamux's) logs; nil discards them.
	Logger *slog.Logger
	// UserAgent is sent on the upgrade request, e.g.
	// "switchboard-agent/1.2.0".
	UserAgent string
	// Protocol is the protocol version offered first; zero means
	// protocol.Version. Dial speaks an older one the control plane names
	// when refusing it, down to protocol.MinVersion (see Dial).
	Protocol int
}

// AcceptConfig configures the control plane's side of the tunnel. Fields
// mean what they mean in DialConfig.
type AcceptConfig struct {
	KeepAliveInterval time.Duration
	// NoKeepAlive turns the control plane's pings off; the agent's still
	// run (and are answered). Set it when the caller notices a vanished
	// peer by other means (the gateway: the agent's Status must arrive
	// within a deadline): it saves a goroutine and a timer per session,
	// which is about 8 KB each for 10,000 agents.
	NoKeepAlive            bool
	ConnectionWriteTimeout time.Duration
	MaxMessageBytes        int64
	AcceptBacklog          int
	// MaxDroppedStreams ends the session once Accept has dropped this
	// many streams (an unknown kind, or no kind byte in time): each could
	// hold a stream window of data until the peer closes it, so a peer
	// that keeps opening them is broken or hostile. 0: no limit.
	MaxDroppedStreams int
	// ReadBufferBytes and WriteBufferBytes size the connection's read
	// and write buffers (DefaultAcceptBufferBytes each when zero), and
	// MuxReadBufferBytes yamux's own read buffer over them
	// (DefaultMuxReadBufferBytes). They are held for the session's life:
	// with net/http's and yamux's 4 KiB each they were 12 KiB of every
	// connected agent, 120 MB for 10,000. Requests, acks and status
	// frames fit the defaults; a larger frame is read past the buffer.
	ReadBufferBytes, WriteBufferBytes, MuxReadBufferBytes int
	Logger                                                *slog.Logger
}

// Default buffer sizes of the control plane's side (AcceptConfig).
const (
	DefaultAcceptBufferBytes  = 1 << 10
	DefaultMuxReadBufferBytes = 128
)

type muxConfig struct {
	keepAlive     time.Duration
	noKeepAlive   bool
	writeTimeout  time.Duration
	maxMessage    int64
	acceptBacklog int
	maxDropped    int
	readBuffer    int // yamux's; 0: its default
	logger        *slog.Logger
}

func (c *muxConfig) fill() {
	if c.keepAlive == 0 {
		c.keepAlive = DefaultKeepAliveInterval
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = DefaultConnectionWriteTimeout
	}
	if c.maxMessage == 0 {
		c.maxMessage = DefaultMaxMessageBytes
	}
	if c.acceptBacklog == 0 {
		c.acceptBacklog = DefaultAcceptBacklog
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
}

func (c *muxConfig) validate() error {
	var errs []error
	if c.keepAlive < 0 {
		errs = append(errs, fmt.Errorf("KeepAliveInterval %v is negative", c.keepAlive))
	}
	if c.writeTimeout < 0 {
		errs = append(errs, fmt.Errorf("ConnectionWriteTimeout %v is negative", c.writeTimeout))
	}
	if c.maxMessage != 0 && c.maxMessage < minMaxMessageBytes {
		errs = append(errs, fmt.Errorf("MaxMessageBytes %d is below %d, the largest yamux frame (12-byte header + 256 KiB window)", c.maxMessage, minMaxMessageBytes))
	}
	if c.acceptBacklog < 0 {
		errs = append(errs, fmt.Errorf("AcceptBacklog %d is negative", c.acceptBacklog))
	}
	if c.maxDropped < 0 {
		errs = append(errs, fmt.Errorf("MaxDroppedStreams %d is negative", c.maxDropped))
	}
	return errors.Join(errs...)
}

// yamux builds the yamux config; closing reports that this side is
// ending the session, when yamux's complaints about the link it is
// closing are expected and logged at debug, not warn.
func (c *muxConfig) yamux(closing func() bool) *yamux.Config {
	return &yamux.Config{
		AcceptBacklog:          c.acceptBacklog,
		EnableKeepAlive:        !c.noKeepAlive,
		KeepAliveInterval:      c.keepAlive,
		ConnectionWriteTimeout: c.writeTimeout,
		MaxStreamWindowSize:    StreamWindowBytes,
		ReadBufferSize:         c.readBuffer,
		StreamOpenTimeout:      streamOpenTimeout,
		StreamCloseTimeout:     streamCloseTimeout,
		// yamux refuses both LogOutput and Logger; its lines carry their
		// own "[ERR]"/"[WARN]" prefix and are all about a failing link.
		Logger: slog.NewLogLogger(quietWhen{Handler: c.logger.Handler(), closing: closing}, slog.LevelWarn),
	}
}

// yamux's own defaults, named here so they are visible: a stream the peer
// never acknowledges kills the session after streamOpenTimeout; a
// half-closed stream is reset after streamCloseTimeout.
const (
	streamOpenTimeout  = 75 * time.Second
	streamCloseTimeout = 5 * time.Minute
)

func (c DialConfig) mux() muxConfig {
	return muxConfig{
		keepAlive:     c.KeepAliveInterval,
		writeTimeout:  c.ConnectionWriteTimeout,
		maxMessage:    c.MaxMessageBytes,
		acceptBacklog: c.AcceptBacklog,
		logger:        c.Logger,
	}
}

func (c AcceptConfig) mux() muxConfig {
	return muxConfig{
		keepAlive:     c.KeepAliveInterval,
		noKeepAlive:   c.NoKeepAlive,
		writeTimeout:  c.ConnectionWriteTimeout,
		maxMessage:    c.MaxMessageBytes,
		acceptBacklog: c.AcceptBacklog,
		maxDropped:    c.MaxDroppedStreams,
		readBuffer:    cmp.Or(c.MuxReadBufferBytes, DefaultMuxReadBufferBytes),
		logger:        c.Logger,
	}
}

// Validate says exactly what is wrong with the configuration. Zero values
// are fine: they mean the defaults.
func (c DialConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("URL is empty"))
	} else if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("URL: %w", err))
	} else {
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			errs = append(errs, fmt.Errorf("URL scheme %q is not ws or wss", u.Scheme))
		}
		if u.Host == "" {
			errs = append(errs, errors.New("URL has no host"))
		}
	}
	if c.Token == "" {
		errs = append(errs, errors.New("Token is empty"))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("HandshakeTimeout %v is negative", c.HandshakeTimeout))
	}
	if c.Protocol != 0 && !protocol.Supported(c.Protocol) {
		errs = append(errs, fmt.Errorf("Protocol %d is outside [%d, %d], the versions this build speaks", c.Protocol, protocol.MinVersion, protocol.Version))
	}
	m := c.mux()
	errs = append(errs, m.validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid tunnel dial config: %w", err)
	}
	return nil
}

// Validate says exactly what is wrong with the configuration.
func (c AcceptConfig) Validate() error {
	m := c.mux()
	err := m.validate()
	if c.ReadBufferBytes < 0 || c.WriteBufferBytes < 0 || c.MuxReadBufferBytes < 0 {
		err = errors.Join(err, fmt.Errorf("buffer sizes must not be negative (read %d, write %d, mux read %d)",
			c.ReadBufferBytes, c.WriteBufferBytes, c.MuxReadBufferBytes))
	}
	if err != nil {
		return fmt.Errorf("invalid tunnel accept config: %w", err)
	}
	return nil
}

// quietWhen demotes records to debug while closing reports true: a clean
// stop (Ctrl-C, SIGTERM) makes yamux say "Failed to read header: …
// context canceled", which is no warning.
type quietWhen struct {
	slog.Handler
	closing func() bool
}

func (h quietWhen) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && h.closing() {
		r.Level = slog.LevelDebug
		if !h.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietWhen) WithAttrs(as []slog.Attr) slog.Handler {
	return quietWhen{Handler: h.Handler.WithAttrs(as), closing: h.closing}
}

func (h quietWhen) WithGroup(name string) slog.Handler {
	return quietWhen{Handler: h.Handler.WithGroup(name), closing: h.closing}
}
