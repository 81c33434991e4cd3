package amitest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// testClient is a minimal AMI client over the real codec, so the fake's
// tests do not depend on the protocol/ami client being written alongside.
type testClient struct {
	t    testing.TB
	conn net.Conn
	in   chan *ami.Message
	err  atomic.Value // error that ended the reader
	wmu  sync.Mutex
	seen []*ami.Message // every message read so far, in order
	ids  atomic.Int64
}

const waitFor = 5 * time.Second

func dial(t testing.TB, srv *Server) *testClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{t: t, conn: conn, in: make(chan *ami.Message, 1<<14)}
	rd := ami.NewReader(conn)
	if v, err := rd.ReadBanner(); err != nil || v != "11.0.0" {
		t.Fatalf("banner %q %v", v, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.in)
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				c.err.Store(err)
				return
			}
			c.in <- m
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return c
}

// login dials and logs in with the default user and the given Events mask
// ("" for none given).
func login(t testing.TB, srv *Server, events string) *testClient {
	t.Helper()
	c := dial(t, srv)
	kv := []string{"Username", DefaultUsername, "Secret", DefaultSecret}
	if events != "" {
		kv = append(kv, "Events", events)
	}
	if r := c.action("Login", kv...); r.Get("Message") != "Authentication accepted" {
		t.Fatalf("login: %q", r.String())
	}
	return c
}

func (c *testClient) send(m *ami.Message) {
	c.t.Helper()
	b, err := ami.AppendWire(nil, m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// sendAction sends an action with a fresh ActionID and returns the id.
func (c *testClient) sendAction(name string, kv ...string) string {
	c.t.Helper()
	id := fmt.Sprintf("t-%d", c.ids.Add(1))
	m := ami.NewAction(name, kv...)
	m.Add("ActionID", id)
	c.send(m)
	return id
}

// action sends an action and returns its Response.
func (c *testClient) action(name string, kv ...string) *ami.Message {
	c.t.Helper()
	id := c.sendAction(name, kv...)
	return c.next(func(m *ami.Message) bool { return m.IsResponse() && m.ActionID() == id })
}

// next returns the first message matching pred, reading (and keeping in
// c.seen) whatever comes before it.
func (c *testClient) next(pred func(*ami.Message) bool) *ami.Message {
	c.t.Helper()
	m, err := c.nextWithin(waitFor, pred)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// find returns the first message since index from of c.seen matching
// pred, reading more if none was seen yet.
func (c *testClient) find(from int, pred func(*ami.Message) bool) *ami.Message {
	c.t.Helper()
	for _, m := range c.seen[from:] {
		if pred(m) {
			return m
		}
	}
	return c.next(pred)
}

var errNoMessage = errors.New("no matching message")

func (c *testClient) nextWithin(d time.Duration, pred func(*ami.Message) bool) (*ami.Message, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				err, _ := c.err.Load().(error)
				return nil, fmt.Errorf("connection ended (%v) before a matching message: %w", err, errNoMessage)
			}
			c.seen = append(c.seen, m)
			if pred(m) {
				return m, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("after %v: %w", d, errNoMessage)
		}
	}
}

// event matches an event by name and optional header=value pairs.
func event(name string, kv ...string) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		if m.Event() != name {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if m.Get(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	}
}

// barrier sends a Ping and returns every message received before its
// Response: nothing the server had queued is missed.
func (c *testClient) barrier() []*ami.Message {
	c.t.Helper()
	start := len(c.seen)
	c.action("Ping")
	return c.seen[start : len(c.seen)-1]
}

// closed waits for the server to end the connection.
func (c *testClient) closed() error {
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				err, _ := c.err.Load().(error)
				return err
			}
			c.seen = append(c.seen, m)
		case <-time.After(waitFor):
			return errors.New("connection still open")
		}
	}
}

func names(msgs []*ami.Message) []string {
	var out []string
	for _, m := range msgs {
		if e := m.Event(); e != "" {
			out = append(out, e)
		} else {
			out = append(out, "Response:"+m.Response())
		}
	}
	return out
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		(err != nil && strings.Contains(err.Error(), "connection reset"))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
