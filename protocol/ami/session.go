package ami

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// maxKeptWriteBuffer: a burst may grow the write buffer; beyond this size
// it is dropped after the write instead of being kept for reuse.
const maxKeptWriteBuffer = 256 << 10

// session is one TCP connection after a successful login. Its goroutines
// (reader, writer, keepalive) run in serve and all end with it.
type session struct {
	c           *Client
	conn        net.Conn
	r           *Reader
	version     string
	connectedAt time.Time

	// Callers append their serialised actions to wbuf; the writer goroutine
	// swaps it out and writes everything queued in one syscall, so many
	// actions in flight cost few writes.
	wmu  sync.Mutex
	wbuf []byte
	wsig chan struct{}

	pmu     sync.Mutex
	pending map[uint64]*call
	closed  bool
}

type callKind uint8

const (
	kindPlain callKind = iota
	kindList
	kindOriginate
)

// call is one action waiting for its answer. ch receives exactly one
// reply: the Response (or the completed list), or the error that ended
// the wait.
type call struct {
	kind      callKind
	ch        chan reply
	list      *ListResult  // kindList: being collected
	orig      *Originating // kindOriginate
	responded bool         // kindOriginate: queued, now waiting for OriginateResponse
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan reply, 1)} }}

// Timers are reused: since Go 1.23 a stopped timer delivers no stale
// value after Reset, so a pooled timer is as good as a new one.
var timerPool sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timerPool.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timerPool.Put(t)
}

type reply struct {
	m    *Message
	list *ListResult
	orig *Originating
	err  error
}

// connect dials, reads the banner and logs in, all within DialTimeout.
func (c *Client) connect(ctx context.Context) (*session, error) {
	s, err := c.dialLogin(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // shutting down: not worth a log line or LastError
		}
		c.setLastError(err)
		switch {
		case errors.Is(err, ErrAuth):
			c.log.Error("ami login refused: check the AMI username and secret", "addr", c.cfg.Addr, "username", c.cfg.Username, "md5", c.cfg.AuthMD5)
		default:
			c.log.Warn("ami connect failed", "addr", c.cfg.Addr, "err", err)
		}
		return nil, err
	}
	return s, nil
}

func (c *Client) dialLogin(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, c.loginError("connect", ctx, err)
	}
	// The handshake reads and writes directly on conn; the deadline and
	// the AfterFunc keep it inside ctx.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	s := &session{
		c:       c,
		conn:    conn,
		r:       NewReader(conn),
		wsig:    make(chan struct{}, 1),
		pending: make(map[uint64]*call),
	}
	s.r.MaxMessageBytes = c.cfg.MaxMessageBytes
	s.r.SkipBlankLines = true // Park's answer carries an extra CRLF (README §21)
	err = s.handshake()
	if stopped := stop(); err != nil || !stopped {
		conn.Close()
		return nil, c.loginError("login", ctx, err)
	}
	_ = conn.SetDeadline(time.Time{})
	s.connectedAt = c.cfg.Now()
	return s, nil
}

// loginError names what failed. When ctx ended, that is the cause, not
// the i/o error the expired deadline provoked.
func (c *Client) loginError(step string, ctx context.Context, err error) error {
	switch cerr := ctx.Err(); {
	case errors.Is(err, ErrAuth):
		return fmt.Errorf("ami %s on %s: %w", step, c.cfg.Addr, err)
	case errors.Is(cerr, context.DeadlineExceeded):
		return fmt.Errorf("%w: ami %s on %s within %v: %w", ErrTimeout, step, c.cfg.Addr, c.cfg.DialTimeout, cerr)
	case cerr != nil:
		return fmt.Errorf("ami %s on %s: %w", step, c.cfg.Addr, cerr)
	case isNetTimeout(err):
		return fmt.Errorf("%w: ami %s on %s: %w", ErrTimeout, step, c.cfg.Addr, err)
	}
	return fmt.Errorf("ami %s on %s: %w", step, c.cfg.Addr, err)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshake reads the banner and logs in (plain or MD5 challenge).
func (s *session) handshake() error {
	ver, err := s.r.ReadBanner()
	if err != nil {
		return err
	}
	s.version = ver
	cfg := &s.c.cfg
	login := NewAction("Login", "Username", cfg.Username)
	if cfg.AuthMD5 {
		resp, err := s.syncRequest(NewAction("Challenge", "AuthType", "md5"))
		if err != nil {
			return fmt.Errorf("md5 challenge: %w", err)
		}
		ch := resp.Get("Challenge")
		if ch == "" {
			return fmt.Errorf("md5 challenge: no Challenge in the response")
		}
		sum := md5.Sum([]byte(ch + cfg.Secret))
		login.Add("AuthType", "md5").Add("Key", hex.EncodeToString(sum[:]))
	} else {
		login.Add("Secret", cfg.Secret)
	}
	login.Add("Events", cfg.Events)
	_, err = s.syncRequest(login)
	var re *ResponseError
	if errors.As(err, &re) && strings.EqualFold(re.Message, "Authentication failed") {
		return fmt.Errorf("%w (user %q)", ErrAuth, cfg.Username)
	}
	return err
}

// syncRequest writes m and reads until its Response; only used before the
// reader goroutine exists (Asterisk sends no events before login).
func (s *session) syncRequest(m *Message) (*Message, error) {
	id := s.c.idSeq.Add(1)
	wire, err := appendAction(nil, m, s.c.idPrefix, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(wire); err != nil {
		return nil, fmt.Errorf("write %s: %w", m.Action(), err)
	}
	for {
		resp, err := s.r.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("read %s response: %w", m.Action(), err)
		}
		h := scan(resp)
		if h.hasEvent || !h.hasResponse {
			continue
		}
		if got, ok := s.c.ownID(h.actionID); !ok || got != id {
			continue
		}
		if strings.EqualFold(h.response, "Error") {
			return resp, &ResponseError{Action: m.Action(), Message: resp.Get("Message")}
		}
		return resp, nil
	}
}

// appendAction serialises m with our ActionID as its last header. Any
// ActionID the caller set is dropped: Asterisk honours the first one, and
// correlation must use ours.
func appendAction(dst []byte, m *Message, prefix string, id uint64) ([]byte, error) {
	if _, ok := m.Lookup("ActionID"); ok {
		m = m.Clone()
		m.Del("ActionID")
	}
	out, err := AppendWire(dst, m)
	if err != nil {
		return dst, err
	}
	out = out[:len(out)-2] // reopen the message before its blank line
	out = append(out, "ActionID: "...)
	out = append(out, prefix...)
	out = strconv.AppendUint(out, id, 10)
	return append(out, "\r\n\r\n"...), nil
}

// ownID parses one of our ActionIDs without allocating.
func (c *Client) ownID(v string) (uint64, bool) {
	if len(v) <= len(c.idPrefix) || v[:len(c.idPrefix)] != c.idPrefix {
		return 0, false
	}
	n, err := strconv.ParseUint(v[len(c.idPrefix):], 10, 64)
	return n, err == nil
}

// activate makes s the session actions go to, and tells subscribers. It
// runs before the reader starts, so SwitchboardConnected precedes the
// session's events.
func (c *Client) activate(s *session) {
	c.infoMu.Lock()
	c.info.AMIVersion, c.info.ConnectedAt = s.version, s.connectedAt
	c.infoMu.Unlock()
	c.sess.Store(s)
	c.log.Info("ami connected", "addr", c.cfg.Addr, "ami_version", s.version, "events", c.cfg.Events)
	c.dispatch(synthetic(EventConnected, "AMIVersion", s.version))
}

// serve runs an activated session until it breaks or ctx ends, then fails
// what is in flight and tells subscribers. It returns how long the session
// lived.
func (c *Client) serve(ctx context.Context, s *session) time.Duration {
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() { s.conn.Close() })
	defer stop()
	g.Go(func() error { return s.readLoop() })
	g.Go(func() error { return s.writeLoop(gctx) })
	g.Go(func() error { return s.keepalive(gctx) })
	err := g.Wait()
	s.conn.Close()
	if ctx.Err() != nil {
		err = ErrClosed
		if c.closeCtx.Err() == nil {
			err = ctx.Err()
		}
	}
	lived := c.cfg.Now().Sub(s.connectedAt)

	c.sess.CompareAndSwap(s, nil)
	if ctx.Err() == nil {
		c.setLastError(err)
	}
	s.failAll(fmt.Errorf("%w: %w", ErrDisconnected, err))
	c.dispatch(synthetic(EventDisconnected, "Error", err.Error()))
	if ctx.Err() == nil {
		c.log.Warn("ami connection lost", "addr", c.cfg.Addr, "err", err, "lived", lived.Round(time.Millisecond))
	} else {
		c.log.Info("ami session closed", "addr", c.cfg.Addr)
	}
	return lived
}

func (s *session) readLoop() error {
	for {
		m, err := s.r.ReadMessage()
		if err != nil {
			if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrLineTooLong) {
				s.onOversized(m, err)
				continue
			}
			return fmt.Errorf("read: %w", err)
		}
		if len(m.Headers) > 0 {
			s.route(m)
		}
	}
}

// onOversized fails the action an oversized message answered, if any: its
// content is incomplete, so delivering it would be a lie.
func (s *session) onOversized(m *Message, err error) {
	h := scan(m)
	s.c.log.Warn("ami message discarded", "err", err, "event", h.event, "action_id", h.actionID)
	id, ok := s.c.ownID(h.actionID)
	if !ok {
		return
	}
	s.pmu.Lock()
	if cl, ok := s.pending[id]; ok && !cl.responded {
		delete(s.pending, id)
		cl.ch <- reply{err: fmt.Errorf("ami: answer discarded: %w", err)}
	}
	s.pmu.Unlock()
}

func (s *session) writeLoop(ctx context.Context) error {
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wsig:
		}
		s.wmu.Lock()
		buf, s.wbuf = s.wbuf, buf[:0]
		s.wmu.Unlock()
		if len(buf) == 0 {
			continue
		}
		if _, err := s.conn.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if cap(buf) > maxKeptWriteBuffer {
			buf = nil
		}
	}
}

func (s *session) keepalive(ctx context.Context) error {
	t := time.NewTicker(s.c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.c.cfg.ActionTimeout)
		_, err := s.roundTrip(pctx, pingAction, kindPlain)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("keepalive: %w", err)
		}
	}
}

// enqueue serialises m into the write buffer and wakes the writer.
func (s *session) enqueue(m *Message, id uint64) error {
	s.wmu.Lock()
	first := len(s.wbuf) == 0
	out, err := appendAction(s.wbuf, m, s.c.idPrefix, id)
	s.wbuf = out
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	// Only the append that found the buffer empty signals: a non-empty
	// buffer means a signal is pending and the writer has not swapped yet.
	if first {
		select {
		case s.wsig <- struct{}{}:
		default:
		}
	}
	return nil
}

// roundTrip sends m and waits for its reply, bounded by ctx and
// ActionTimeout.
func (s *session) roundTrip(ctx context.Context, m *Message, kind callKind) (reply, error) {
	var cl *call
	switch kind {
	case kindPlain:
		// Plain calls never escape roundTrip, so they are reused: once the
		// call is out of the pending table nothing else can touch it.
		cl = callPool.Get().(*call)
		defer callPool.Put(cl)
	case kindList:
		cl = &call{kind: kind, ch: make(chan reply, 1), list: &ListResult{}}
	case kindOriginate:
		cl = &call{kind: kind, ch: make(chan reply, 1), orig: &Originating{done: make(chan struct{})}}
	}
	id := s.c.idSeq.Add(1)
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		return reply{}, ErrNotConnected
	}
	s.pending[id] = cl
	s.pmu.Unlock()
	if kind == kindOriginate {
		cl.orig.id = s.c.idPrefix + strconv.FormatUint(id, 10)
	}
	if err := s.enqueue(m, id); err != nil {
		s.pmu.Lock()
		delete(s.pending, id)
		s.pmu.Unlock()
		return reply{}, fmt.Errorf("ami: %s not sent: %w", m.Action(), err)
	}

	var timeout <-chan time.Time
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.c.cfg.ActionTimeout {
		t := getTimer(s.c.cfg.ActionTimeout)
		defer putTimer(t)
		timeout = t.C
	}
	var err error
	select {
	case r := <-cl.ch:
		return r, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = context.DeadlineExceeded
	}
	s.pmu.Lock()
	if cur, ok := s.pending[id]; ok && cur == cl && !cl.responded {
		delete(s.pending, id)
		s.pmu.Unlock()
		return reply{}, ctxError(m.Action(), err)
	}
	s.pmu.Unlock()
	// The reply was delivered while we gave up: it is in the channel.
	return <-cl.ch, nil
}

// failAll ends every wait on this session with err; later registrations
// are refused.
func (s *session) failAll(err error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.closed = true
	for id, cl := range s.pending {
		delete(s.pending, id)
		if cl.responded {
			cl.orig.resolve(nil, err)
		} else {
			cl.ch <- reply{err: err}
		}
	}
}

// headers are the few a message is routed by, found in one pass; the
// first of duplicates wins, and order does not matter (Status items put
// ActionID last).
type headers struct {
	event, response, actionID, eventList string
	hasEvent, hasResponse                bool
}

func scan(m *Message) headers {
	var h headers
	var hasID, hasList bool
	for _, kv := range m.Headers {
		switch len(kv.Key) {
		case 5:
			if !h.hasEvent && strings.EqualFold(kv.Key, "Event") {
				h.event, h.hasEvent = kv.Value, true
			}
		case 8:
			if !h.hasResponse && strings.EqualFold(kv.Key, "Response") {
				h.response, h.hasResponse = kv.Value, true
			} else if !hasID && strings.EqualFold(kv.Key, "ActionID") {
				h.actionID, hasID = kv.Value, true
			}
		case 9:
			if !hasList && strings.EqualFold(kv.Key, "EventList") {
				h.eventList, hasList = kv.Value, true
			}
		}
	}
	return h
}

// route hands a message to the action waiting for it, or to subscribers.
func (s *session) route(m *Message) {
	h := scan(m)
	id, ours := s.c.ownID(h.actionID)
	if !h.hasEvent {
		if !h.hasResponse {
			return
		}
		if ours && s.onResponse(m, h, id) {
			return
		}
		s.c.log.Debug("ami response for no waiting action", "action_id", h.actionID, "response", h.response)
		return
	}
	if ours && s.onEvent(m, h, id) {
		return
	}
	s.c.dispatch(m)
}

func (s *session) onResponse(m *Message, h headers, id uint64) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	cl, ok := s.pending[id]
	if !ok || cl.responded {
		return false
	}
	isErr := strings.EqualFold(h.response, "Error")
	switch cl.kind {
	case kindPlain:
		delete(s.pending, id)
		cl.ch <- reply{m: m}
	case kindList:
		if isErr || !strings.EqualFold(h.eventList, "start") {
			delete(s.pending, id)
			cl.ch <- reply{m: m}
		} else {
			cl.list.Response = m
		}
	case kindOriginate:
		if isErr {
			delete(s.pending, id)
		} else {
			cl.responded = true
		}
		cl.ch <- reply{m: m, orig: cl.orig}
	}
	return true
}

// onEvent reports whether the event was consumed (a list item); an
// OriginateResponse resolves its Originating and still goes to subscribers.
func (s *session) onEvent(m *Message, h headers, id uint64) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	cl, ok := s.pending[id]
	if !ok {
		return false
	}
	switch {
	case cl.kind == kindList:
		if strings.EqualFold(h.eventList, "Complete") {
			delete(s.pending, id)
			cl.list.Complete = m
			cl.ch <- reply{m: cl.list.Response, list: cl.list}
		} else {
			cl.list.Items = append(cl.list.Items, m)
		}
		return true
	case cl.kind == kindOriginate && cl.responded && strings.EqualFold(h.event, "OriginateResponse"):
		delete(s.pending, id)
		cl.orig.resolve(m, nil)
	}
	return false
}
