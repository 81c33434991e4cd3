package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/yamux"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// ErrSessionClosed is returned by Open and Accept once the session is gone
// (peer disconnected, keepalive failed, Close, or its context ended). It
// matches net.ErrClosed too.
var ErrSessionClosed = fmt.Errorf("tunnel session closed: %w", net.ErrClosed)

// ErrTooManyDropped: Accept closed the session because the peer opened
// AcceptConfig.MaxDroppedStreams streams it had to drop.
var ErrTooManyDropped = errors.New("too many dropped streams")

// Session is one live tunnel: a yamux session over a WebSocket. It is safe
// for concurrent use. Its life is bounded by the context given to Dial or
// Accept, by Close, and by the peer.
type Session struct {
	mux    *yamux.Session
	remote net.Addr
	logger *slog.Logger
	// kindTimeout bounds the wait for the kind byte of an accepted
	// stream: the opener writes it right after opening, so a longer wait
	// means a broken peer.
	kindTimeout time.Duration
	stopCtx     func() bool // stops the context.AfterFunc that closes us
	// closing: this side is ending the session (Close, or its context
	// ended), so yamux's errors about the link are expected.
	closing atomic.Bool
	// protocol is the version agreed on the upgrade request.
	protocol int
	// maxDropped (0: none) ends the session after that many dropped
	// streams; dropped counts them.
	maxDropped int64
	dropped    atomic.Int64
}

func newSession(ctx context.Context, ws *websocket.Conn, remote net.Addr, client bool, version int, cfg muxConfig) (*Session, error) {
	// The net.Conn lives as long as the session's context, not the
	// handshake's: cancelling ctx tears the whole tunnel down.
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	// NetConn lifts the read limit; put ours back.
	ws.SetReadLimit(cfg.maxMessage)
	if remote == nil {
		remote = nc.RemoteAddr()
	}
	newMux := yamux.Server
	if client {
		newMux = yamux.Client
	}
	co := newCoalescer(nc)
	// yamux's Session.Close closes the connection before its streams,
	// so the connection's Close should be quick: it ends at once, with
	// no WebSocket close handshake to wait for (the peer handles a closed
	// TCP connection the same way: it redials). Upstream yamux v0.1.2
	// even spins the streams' readers meanwhile (third_party/yamux).
	co.closeNow = func() error {
		err := ws.CloseNow()
		_ = nc.Close() // releases NetConn's timers and contexts
		return err
	}
	s := &Session{
		remote:      remote,
		logger:      cfg.logger,
		kindTimeout: cfg.writeTimeout,
		protocol:    version,
		maxDropped:  int64(cfg.maxDropped),
	}
	m, err := newMux(co, cfg.yamux(func() bool { return s.closing.Load() || ctx.Err() != nil }))
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("start yamux: %w", err)
	}
	s.mux = m
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.mux.Close() })
	return s, nil
}

// Stream is what the net.Conn that Accept and Open return also is: a
// reader may wait for SetNotify's calls instead of parking a goroutine in
// Read while the peer sends nothing.
type Stream interface {
	net.Conn
	// SetNotify sets fn, called when data arrives or the stream ends, and
	// once at once. fn runs on the session's receive loop, possibly with
	// the stream's locks held: it must return at once and call none of
	// the stream's methods (it may start a goroutine that does).
	SetNotify(fn func())
	// ReadReady reports the bytes a Read returns without waiting, and
	// whether a Read returns at once anyway (the stream or its session
	// ended).
	ReadReady() (buffered int, done bool)
	// Shrink drops the stream's receive buffer while it is empty.
	Shrink()
}

var _ Stream = (*yamux.Stream)(nil)

// Open opens a stream and writes kind as its first byte, so the peer's
// Accept returns at once. ctx bounds the open and that write, not the
// stream's life; set deadlines on the returned net.Conn for that.
func (s *Session) Open(ctx context.Context, kind protocol.StreamKind) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open %v stream: %w", kind, err)
	}
	st, err := s.openStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %v stream: %w", kind, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetWriteDeadline(dl)
	}
	if err := protocol.WriteKind(st, kind); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("open %v stream: %w", kind, s.mapErr(ctx, err))
	}
	_ = st.SetWriteDeadline(time.Time{})
	return st, nil
}

// openStream opens a yamux stream, waiting while AcceptBacklog streams
// are waiting for the peer's acknowledgement, at most until ctx ends
// (OpenStreamContext, third_party/yamux).
func (s *Session) openStream(ctx context.Context) (*yamux.Stream, error) {
	st, err := s.mux.OpenStreamContext(ctx)
	return st, s.mapErr(ctx, err)
}

// Accept waits for the peer to open a stream and returns it with its kind.
// Streams with an unknown kind, or whose kind byte does not arrive in
// time, are logged and closed, and Accept keeps waiting: only ctx or the
// end of the session make it return an error.
func (s *Session) Accept(ctx context.Context) (net.Conn, protocol.StreamKind, error) {
	for {
		st, err := s.mux.AcceptStreamWithContext(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("accept stream: %w", s.mapErr(ctx, err))
		}
		kind, err := s.readKind(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				_ = st.Close()
				return nil, 0, fmt.Errorf("accept stream: %w", ctx.Err())
			}
			s.logger.Warn("dropping stream", "stream", st.StreamID(), "kind", kind, "err", err)
			_ = st.Close()
			if n := s.dropped.Add(1); s.maxDropped > 0 && n >= s.maxDropped {
				_ = s.Close()
				return nil, 0, fmt.Errorf("accept stream: %w: the peer opened %d streams that had to be dropped", ErrTooManyDropped, n)
			}
			continue
		}
		return st, kind, nil
	}
}

// readKind reads the kind byte within kindTimeout, giving up early if
// ctx ends.
func (s *Session) readKind(ctx context.Context, st *yamux.Stream) (protocol.StreamKind, error) {
	_ = st.SetReadDeadline(time.Now().Add(s.kindTimeout))
	stop := context.AfterFunc(ctx, func() { _ = st.SetReadDeadline(time.Now()) })
	kind, err := protocol.ReadKind(st)
	if !stop() {
		// ctx ended meanwhile and its deadline poke may land after
		// any reset we do: this stream is no longer usable.
		return kind, ctx.Err()
	}
	_ = st.SetReadDeadline(time.Time{})
	return kind, err
}

// mapErr turns yamux's session-level errors into ErrSessionClosed and
// prefers ctx's error when ctx is what ended the wait.
func (s *Session) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, yamux.ErrRemoteGoAway) || s.mux.IsClosed() {
		return fmt.Errorf("%w (%v)", ErrSessionClosed, err)
	}
	return err
}

// Close ends the session and every stream in it. The peer sees its
// session end at once. Safe to call more than once.
func (s *Session) Close() error {
	s.closing.Store(true)
	s.stopCtx()
	return s.mux.Close()
}

// Done is closed when the session dies: peer gone, keepalive failed, Close
// called, or the session's context ended.
func (s *Session) Done() <-chan struct{} { return s.mux.CloseChan() }

// RemoteAddr is the peer's address: the agent's TCP address on the control
// plane, the dialled URL's host on the agent.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// Protocol is the protocol version both ends agreed on in the upgrade
// request: the one the agent offered and the control plane accepted.
func (s *Session) Protocol() int { return s.protocol }

// NumStreams is the number of streams currently open.
func (s *Session) NumStreams() int { return s.mux.NumStreams() }

// urlAddr is the agent side's RemoteAddr: coder/websocket cannot give the
// real socket address of a dialled connection.
type urlAddr string

func (a urlAddr) Network() string { return "websocket" }
func (a urlAddr) String() string  { return string(a) }
