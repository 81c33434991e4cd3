package ami

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// capture is a transcript cut into groups: what the client sent in one go
// (one or more actions) and the exact bytes Asterisk sent back before the
// next send. Group 0 is the banner.
type capture struct {
	name        string
	groups      []capGroup
	peerCloses  bool // the capture ends with Asterisk closing the socket
	endsLogoffs bool
}

type capGroup struct {
	actions []*Message
	recv    []byte
}

// loadCapture reads NAME.txt for the shape (which "<<<" lines follow which
// ">>>" block) and takes the bytes from NAME.recv.raw / NAME.sent.raw.
func loadCapture(t testing.TB, name string) *capture {
	t.Helper()
	base := filepath.Join(transcriptDir, name)
	txt, err := os.ReadFile(base + ".txt")
	if err != nil {
		t.Fatal(err)
	}
	recv, err := os.ReadFile(base + ".recv.raw")
	if err != nil {
		t.Fatal(err)
	}
	sent, err := os.ReadFile(base + ".sent.raw")
	if err != nil {
		t.Fatal(err)
	}
	sr := NewReader(bytes.NewReader(sent))
	var sentMsgs []*Message
	for {
		m, err := sr.ReadMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("%s.sent.raw: %v", name, err)
		}
		sentMsgs = append(sentMsgs, m)
	}

	type shape struct{ sends, recvLines int }
	shapes := []shape{{}}
	lastWasRecv := true
	for _, line := range strings.Split(string(txt), "\n") {
		switch {
		case strings.HasPrefix(line, ">>>"):
			if lastWasRecv {
				shapes = append(shapes, shape{})
			}
			lastWasRecv = false
			body := strings.TrimSuffix(strings.TrimPrefix(line, ">>>"), " [LF-only]")
			if strings.TrimSpace(body) == "" {
				shapes[len(shapes)-1].sends++
			}
		case strings.HasPrefix(line, "<<<"):
			lastWasRecv = true
			shapes[len(shapes)-1].recvLines++
		}
	}
	c := &capture{name: name, peerCloses: bytes.Contains(txt, []byte("closed by peer"))}
	rest := recv
	for _, sh := range shapes {
		g := capGroup{actions: sentMsgs[:sh.sends]}
		sentMsgs = sentMsgs[sh.sends:]
		n := 0
		for i := 0; i < sh.recvLines; i++ {
			n += bytes.IndexByte(rest[n:], '\n') + 1
		}
		g.recv, rest = rest[:n], rest[n:]
		c.groups = append(c.groups, g)
	}
	if len(sentMsgs) != 0 || len(rest) != 0 {
		t.Fatalf("%s: %d sent messages and %d received bytes not placed in a group", name, len(sentMsgs), len(rest))
	}
	last := c.groups[len(c.groups)-1]
	c.endsLogoffs = len(last.actions) > 0 && strings.EqualFold(last.actions[0].Action(), "Logoff")
	return c
}

// tcpServer is a loopback listener running handle for each connection; it
// stops and waits for every handler at test cleanup.
type tcpServer struct {
	t      testing.TB
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	accept int
}

func newTCPServer(t testing.TB, handle func(conn net.Conn, n int)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{t: t, ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[conn] = true
			n := s.accept
			s.accept++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				handle(conn, n)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *tcpServer) Addr() string { return s.ln.Addr().String() }

func (s *tcpServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accept
}

// dropAll closes every open connection (the server keeps listening).
func (s *tcpServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
		delete(s.conns, c)
	}
}

func (s *tcpServer) close() {
	s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

// replayServer answers each client action with the captured bytes that
// followed the same action, ActionIDs rewritten to the client's. Groups
// whose captured actions carried no ActionID are written unprompted (the
// client must ignore their responses). received collects what the client
// sent.
func replayServer(t testing.TB, c *capture) (*tcpServer, func() []*Message) {
	var mu sync.Mutex
	var received []*Message
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		r := NewReader(conn)
		w := bufio.NewWriter(conn)
		for gi, g := range c.groups {
			recv := g.recv
			for _, want := range g.actions {
				capID := want.ActionID()
				if capID == "" {
					continue
				}
				got, err := r.ReadMessage()
				if err != nil {
					return // the client went away: the test used fewer groups
				}
				mu.Lock()
				received = append(received, got)
				mu.Unlock()
				if !strings.EqualFold(got.Action(), want.Action()) {
					t.Errorf("%s group %d: client sent %q, capture has %q", c.name, gi, got.Action(), want.Action())
					return
				}
				recv = bytes.ReplaceAll(recv, []byte("ActionID: "+capID+"\r\n"), []byte("ActionID: "+got.ActionID()+"\r\n"))
			}
			w.Write(recv)
			if err := w.Flush(); err != nil {
				return
			}
		}
		if c.peerCloses || c.endsLogoffs {
			return
		}
		io.Copy(io.Discard, conn) // until the client closes
	})
	return srv, func() []*Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]*Message(nil), received...)
	}
}

// amiConn is the server side of one scripted connection.
type amiConn struct {
	t    testing.TB
	conn net.Conn
	r    *Reader
	wmu  sync.Mutex
}

func newAMIConn(t testing.TB, conn net.Conn) *amiConn {
	return &amiConn{t: t, conn: conn, r: NewReader(conn)}
}

func (a *amiConn) write(s string) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	_, err := io.WriteString(a.conn, s)
	return err
}

func (a *amiConn) read() (*Message, error) { return a.r.ReadMessage() }

// login writes the banner and accepts any Login.
func (a *amiConn) login() bool {
	if a.write("Asterisk Call Manager/11.0.0\r\n") != nil {
		return false
	}
	m, err := a.read()
	if err != nil {
		return false
	}
	if !strings.EqualFold(m.Action(), "Login") {
		a.t.Errorf("first action %q, want Login", m.Action())
		return false
	}
	return a.write("Response: Success\r\nActionID: "+m.ActionID()+"\r\nMessage: Authentication accepted\r\n\r\n") == nil
}

// serveBasic answers Ping and echoes any other action with Success, until
// the connection ends.
func (a *amiConn) serveBasic() {
	for {
		m, err := a.read()
		if err != nil {
			return
		}
		if a.write(pong(m.ActionID())) != nil {
			return
		}
	}
}

func pong(id string) string {
	return "Response: Success\r\nActionID: " + id + "\r\nPing: Pong\r\nTimestamp: 1795336999.491584\r\n\r\n"
}

// logBuffer collects log output across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testConfig(addr string, logs io.Writer) Config {
	if logs == nil {
		logs = io.Discard
	}
	return Config{
		Addr:          addr,
		Username:      "switchboard",
		Secret:        "switchboard-secret",
		ActionTimeout: 2 * time.Second,
		DialTimeout:   2 * time.Second,
		ReconnectMin:  5 * time.Millisecond,
		ReconnectMax:  20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// running is a client under Run with a subscription opened before it
// connected, so the subscription sees SwitchboardConnected first.
type running struct {
	*Client
	sub  *Subscription
	done chan error
}

func startRun(t testing.TB, cfg Config) *running {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Client: c, sub: c.Subscribe(4096), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		c.Close()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	r.next(t, EventConnected)
	return r
}

// next returns the next event on the subscription named event, skipping
// others; it fails the test after a deadline.
func (r *running) next(t testing.TB, event string) *Message {
	t.Helper()
	return nextEvent(t, r.sub, event)
}

func nextEvent(t testing.TB, sub *Subscription, event string) *Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription closed while waiting for %s", event)
			}
			if m.Event() == event {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s event within 5s", event)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}
