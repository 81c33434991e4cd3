package ami

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no username", func(c *Config) { c.Username = "" }, "Username is empty"},
		{"bad addr", func(c *Config) { c.Addr = "localhost" }, `Addr "localhost"`},
		{"bad port", func(c *Config) { c.Addr = "127.0.0.1:99999" }, "port must be 1-65535"},
		{"negative timeout", func(c *Config) { c.ActionTimeout = -time.Second }, "ActionTimeout is negative"},
		{"min above max", func(c *Config) { c.ReconnectMin = time.Minute; c.ReconnectMax = time.Second }, "ReconnectMin 1m0s is above ReconnectMax 1s"},
		{"tiny message limit", func(c *Config) { c.MaxMessageBytes = 10 }, "MaxMessageBytes 10 is below 1024"},
		{"secret with CRLF", func(c *Config) { c.Secret = "s3cr3t\r\nAction: Hangup" }, "Secret cannot be sent"},
		{"events with LF", func(c *Config) { c.Events = "on\nx" }, "Events cannot be sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Username: "switchboard", Secret: "pw"}
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if _, err := New(cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error echoes the secret: %v", err)
			}
			if _, err := New(cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		rand     func(n int64) int64
		attempts int
		want     []time.Duration
	}{
		{"upper end doubles to the cap", func(n int64) int64 { return n - 1 }, 6,
			[]time.Duration{100, 200, 400, 800, 1000, 1000}},
		{"lower end stays at min", func(int64) int64 { return 0 }, 4,
			[]time.Duration{100, 100, 100, 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(100*time.Millisecond, time.Second)
			b.rand = tc.rand
			for i := 0; i < tc.attempts; i++ {
				if got := b.next(); got != tc.want[i]*time.Millisecond {
					t.Errorf("attempt %d: %v, want %v", i, got, tc.want[i]*time.Millisecond)
				}
			}
			b.reset()
			if got := b.next(); got != 100*time.Millisecond {
				t.Errorf("after reset: %v", got)
			}
		})
	}
	// Real jitter stays inside [min, cap].
	b := newBackoff(10*time.Millisecond, 80*time.Millisecond)
	for i := 0; i < 1000; i++ {
		if d := b.next(); d < 10*time.Millisecond || d > 80*time.Millisecond {
			t.Fatalf("delay %v out of range", d)
		}
	}
}

func TestMD5Login(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		wantErr error
	}{
		{"right secret", "switchboard-secret", nil},
		{"wrong secret", "nope", ErrAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTCPServer(t, func(conn net.Conn, _ int) {
				a := newAMIConn(t, conn)
				a.write("Asterisk Call Manager/11.0.0\r\n")
				ch, err := a.read()
				if err != nil || ch.Action() != "Challenge" || ch.Get("AuthType") != "md5" {
					t.Errorf("want Challenge, got %v %v", ch, err)
					return
				}
				a.write("Response: Success\r\nActionID: " + ch.ActionID() + "\r\nChallenge: 159956459\r\n\r\n")
				login, err := a.read()
				if err != nil {
					return
				}
				sum := md5.Sum([]byte("159956459switchboard-secret"))
				if login.Get("Secret") != "" || login.Get("AuthType") != "md5" {
					t.Errorf("login %q", login.String())
				}
				if login.Get("Key") != hex.EncodeToString(sum[:]) {
					a.write("Response: Error\r\nActionID: " + login.ActionID() + "\r\nMessage: Authentication failed\r\n\r\n")
					return
				}
				a.write("Response: Success\r\nActionID: " + login.ActionID() + "\r\nMessage: Authentication accepted\r\n\r\n")
				a.serveBasic()
			})
			cfg := testConfig(srv.Addr(), nil)
			cfg.AuthMD5, cfg.Secret = true, tc.secret
			c, err := Dial(ctxT(t), cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Dial: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer c.Close()
			if _, err := c.Ping(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	t.Run("bad banner", func(t *testing.T) {
		srv := newTCPServer(t, func(conn net.Conn, _ int) { conn.Write([]byte("SSH-2.0-OpenSSH\r\n")) })
		if _, err := Dial(ctxT(t), testConfig(srv.Addr(), nil)); !errors.Is(err, ErrBadBanner) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("silent server times out", func(t *testing.T) {
		srv := newTCPServer(t, func(conn net.Conn, _ int) { conn.Read(make([]byte, 1)) })
		cfg := testConfig(srv.Addr(), nil)
		cfg.DialTimeout = 50 * time.Millisecond
		_, err := Dial(ctxT(t), cfg)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ctx cancelled during login", func(t *testing.T) {
		srv := newTCPServer(t, func(conn net.Conn, _ int) { conn.Read(make([]byte, 1)) })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := Dial(ctx, testConfig(srv.Addr(), nil)); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, err := Dial(ctxT(t), testConfig(addr, nil)); err == nil {
			t.Fatal("Dial succeeded with nothing listening")
		}
	})
}

// Many actions in flight on one connection, answered out of order with
// events in between, each reach their own caller.
func TestConcurrentActionsOutOfOrder(t *testing.T) {
	const n = 50
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		var batch []*Message
		for len(batch) < n {
			m, err := a.read()
			if err != nil {
				return
			}
			batch = append(batch, m)
		}
		for i := len(batch) - 1; i >= 0; i-- {
			m := batch[i]
			a.write("Event: Noise\r\nActionID: " + m.ActionID() + "x\r\n\r\n")
			a.write("Response: Success\r\nActionID: " + m.ActionID() + "\r\nEcho: " + m.Get("Echo") + "\r\n\r\n")
		}
		a.serveBasic()
	})
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() {
			want := strconv.Itoa(i)
			m, err := c.Action(ctxT(t), NewAction("Echo", "Echo", want))
			if err != nil || m.Get("Echo") != want {
				t.Errorf("caller %d got %v %v", i, m, err)
			}
		})
	}
	wg.Wait()
}

func TestActionIDIsOursAndMessageUntouched(t *testing.T) {
	got := make(chan *Message, 1)
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		m, err := a.read()
		if err != nil {
			return
		}
		got <- m
		a.write(pong(m.ActionID()))
		a.serveBasic()
	})
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := NewAction("Ping", "ActionID", "caller-chosen")
	if _, err := c.Action(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	sent := <-got
	if ids := sent.Values("ActionID"); len(ids) != 1 || !strings.HasPrefix(ids[0], c.idPrefix) {
		t.Errorf("sent ActionIDs %q", ids)
	}
	if m.ActionID() != "caller-chosen" || len(m.Headers) != 2 {
		t.Errorf("caller's message changed: %q", m.String())
	}
}

// Injection is refused before anything reaches the wire: the next thing
// the server reads after Login is the Ping that follows.
func TestInjectionRefusedBeforeWrite(t *testing.T) {
	got := make(chan *Message, 4)
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		for {
			m, err := a.read()
			if err != nil {
				return
			}
			got <- m
			a.write(pong(m.ActionID()))
		}
	})
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := []*Message{
		NewAction("Setvar", "Channel", "Local/150@inoffice-00000015;1", "Variable", "INJ", "Value", "harmless\r\n\r\nAction: Hangup\r\nChannel: Local/150@inoffice-00000015;1"),
		NewAction("Setvar", "Value", "a\nAction: Hangup"),
		NewAction("Ping", "X-Long", strings.Repeat("A", 2000)),
	}
	for _, m := range bad {
		_, err := c.Action(ctxT(t), m)
		if !errors.Is(err, ErrInjection) && !errors.Is(err, ErrLineTooLong) {
			t.Errorf("err = %v", err)
		}
	}
	var ie *InjectionError
	if _, err := c.List(ctxT(t), bad[0]); !errors.As(err, &ie) || ie.Key != "Value" {
		t.Errorf("List: %v", err)
	}
	if _, err := c.Originate(ctxT(t), NewAction("Originate", "Channel", "Local/1@x\r\nAction: Hangup")); !errors.Is(err, ErrInjection) {
		t.Errorf("Originate: %v", err)
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Action() != "Ping" || len(m.Headers) != 2 {
		t.Fatalf("server read %q first", m.String())
	}
	if c.sess.Load().pendingLen() != 0 {
		t.Error("refused actions left entries in the pending table")
	}
}

func (s *session) pendingLen() int {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return len(s.pending)
}

func TestActionDeadlines(t *testing.T) {
	// The server answers "Ping" at once and never answers "Hold".
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		for {
			m, err := a.read()
			if err != nil {
				return
			}
			if m.Action() == "Ping" {
				a.write(pong(m.ActionID()))
			}
		}
	})
	cfg := testConfig(srv.Addr(), nil)
	cfg.ActionTimeout = 30 * time.Millisecond
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	cancelled, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	tests := []struct {
		name  string
		ctx   context.Context
		wants []error
	}{
		{"default action timeout", context.Background(), []error{ErrTimeout, context.DeadlineExceeded}},
		{"ctx deadline", short, []error{ErrTimeout, context.DeadlineExceeded}},
		{"ctx cancelled", cancelled, []error{context.Canceled}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Action(tc.ctx, NewAction("Hold"))
			for _, w := range tc.wants {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			if errors.Is(err, ErrTimeout) != errors.Is(tc.wants[0], ErrTimeout) {
				t.Errorf("err = %v", err)
			}
		})
	}
	// Abandoned waits leave nothing behind, and the session still works.
	if n := c.sess.Load().pendingLen(); n != 0 {
		t.Errorf("%d abandoned calls still pending", n)
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// An already-cancelled ctx sends nothing.
	if _, err := c.Action(cancelled, NewAction("Ping")); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestNotConnectedAndClosed(t *testing.T) {
	c, err := New(Config{Username: "u", Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctxT(t)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("before Run: %v", err)
	}
	if c.Connected() {
		t.Error("Connected before Run")
	}
	c.Close()
	if _, err := c.Ping(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := c.Run(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if _, ok := <-c.Subscribe(1).C(); ok {
		t.Error("Subscribe after Close delivered")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// A connection lost mid-action fails every wait with ErrDisconnected:
// plain and list actions, queued Originates, and Originates whose
// Response has not come yet.
func TestDisconnectFailsInFlight(t *testing.T) {
	const waiting = 3 // actions that reach the server before it hangs up
	srv := newTCPServer(t, func(conn net.Conn, n int) {
		a := newAMIConn(t, conn)
		if !a.login() || n > 0 {
			return
		}
		for i := 0; i < waiting; i++ {
			m, err := a.read()
			if err != nil {
				return
			}
			if m.Action() == "Originate" {
				a.write("Response: Success\r\nActionID: " + m.ActionID() + "\r\nMessage: Originate successfully queued\r\n\r\n")
			}
		}
		// Hang up with everything else unanswered.
	})
	r := startRun(t, testConfig(srv.Addr(), nil))
	ctx := ctxT(t)
	o, err := r.Originate(ctx, NewAction("Originate", "Channel", "Local/150@inoffice", "Application", "Wait", "Data", "600"))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { _, err := r.Action(ctx, NewAction("Hold")); errs <- err }()
	go func() { _, err := r.List(ctx, NewAction("CoreShowChannels")); errs <- err }()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, ErrDisconnected) {
			t.Errorf("in flight: %v", err)
		}
	}
	if _, err := o.Wait(ctx); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Wait: %v", err)
	}
	if d := r.next(t, EventDisconnected); d.Get("Error") == "" {
		t.Error("Disconnected event without Error")
	}
	r.next(t, EventConnected)
}

func TestOriginateWaitCtx(t *testing.T) {
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		for {
			m, err := a.read()
			if err != nil {
				return
			}
			a.write("Response: Success\r\nActionID: " + m.ActionID() + "\r\nMessage: Originate successfully queued\r\n\r\n")
		}
	})
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Originate(ctxT(t), NewAction("Ping")); err == nil {
		t.Error("Originate accepted a Ping")
	}
	o, err := c.Originate(ctxT(t), NewAction("Originate", "Channel", "Local/noanswer@inoffice", "Application", "Wait", "Data", "1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := o.Wait(ctx); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait: %v", err)
	}
	if !strings.HasPrefix(o.ActionID(), c.idPrefix) {
		t.Errorf("ActionID %q", o.ActionID())
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if a.login() {
			a.serveBasic()
		}
	})
	r := startRun(t, testConfig(srv.Addr(), nil))
	for round := 0; round < 3; round++ {
		if _, err := r.Ping(ctxT(t)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		srv.dropAll()
		r.next(t, EventDisconnected)
		if m := r.next(t, EventConnected); m.Get("AMIVersion") != "11.0.0" {
			t.Errorf("Connected %q", m.String())
		}
	}
	if got := srv.accepted(); got != 4 {
		t.Errorf("server accepted %d connections, want 4", got)
	}
	if _, err := r.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// A server that stops answering (but keeps the socket open) is detected
// by the keepalive, torn down and redialled.
func TestKeepaliveDetectsDeadServer(t *testing.T) {
	srv := newTCPServer(t, func(conn net.Conn, n int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		if n == 0 {
			for { // swallow everything, answer nothing
				if _, err := a.read(); err != nil {
					return
				}
			}
		}
		a.serveBasic()
	})
	cfg := testConfig(srv.Addr(), nil)
	cfg.PingInterval = 10 * time.Millisecond
	cfg.ActionTimeout = 30 * time.Millisecond
	r := startRun(t, cfg)
	d := r.next(t, EventDisconnected)
	if !strings.Contains(d.Get("Error"), "keepalive") {
		t.Errorf("Disconnected Error = %q", d.Get("Error"))
	}
	r.next(t, EventConnected)
	// The redialled session answers. One Ping may miss the 30 ms
	// ActionTimeout on a loaded machine; the keepalive would then redial
	// again, so a few tries are allowed.
	var err error
	for range 20 {
		if _, err = r.Ping(ctxT(t)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the redialled session never answered a Ping: %v", err)
	}
	if !strings.Contains(r.Info().LastError, "keepalive") {
		t.Errorf("LastError %q", r.Info().LastError)
	}
}

func TestAuthFailureBacksOffAndNeverLogsSecret(t *testing.T) {
	var attempts atomic.Int32
	var times sync.Map
	srv := newTCPServer(t, func(conn net.Conn, n int) {
		times.Store(n, time.Now())
		a := newAMIConn(t, conn)
		a.write("Asterisk Call Manager/11.0.0\r\n")
		m, err := a.read()
		if err != nil {
			return
		}
		if attempts.Add(1) <= 3 {
			a.write("Response: Error\r\nActionID: " + m.ActionID() + "\r\nMessage: Authentication failed\r\n\r\n")
			return
		}
		a.write("Response: Success\r\nActionID: " + m.ActionID() + "\r\nMessage: Authentication accepted\r\n\r\n")
		a.serveBasic()
	})
	var logs logBuffer
	cfg := testConfig(srv.Addr(), &logs)
	cfg.ReconnectMin = 20 * time.Millisecond
	cfg.ReconnectMax = 40 * time.Millisecond
	r := startRun(t, cfg) // returns after the 4th attempt logged in
	for i := 1; i < 4; i++ {
		prev, _ := times.Load(i - 1)
		cur, _ := times.Load(i)
		if gap := cur.(time.Time).Sub(prev.(time.Time)); gap < cfg.ReconnectMin {
			t.Errorf("attempt %d came %v after the previous one, under ReconnectMin", i, gap)
		}
	}
	out := logs.String()
	if strings.Count(out, "ami login refused") != 3 || !strings.Contains(out, "component=ami") {
		t.Errorf("logs:\n%s", out)
	}
	if strings.Contains(out, cfg.Secret) {
		t.Errorf("secret logged:\n%s", out)
	}
	if _, err := r.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// A slow subscriber loses events (counted, then announced in place) while
// a fast one sees every event and the reader never waits.
func TestSlowSubscriberDrops(t *testing.T) {
	const events = 200
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		var b strings.Builder
		for i := 0; i < events; i++ {
			fmt.Fprintf(&b, "Event: Tick\r\nN: %d\r\n\r\n", i)
		}
		a.write(b.String())
		a.serveBasic()
	})
	c, err := New(testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	slow := c.Subscribe(4)
	fast := c.Subscribe(events + 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done; c.Close() }()

	nextEvent(t, fast, EventConnected)
	for i := 0; i < events; i++ {
		m := nextEvent(t, fast, "Tick")
		if m.Get("N") != strconv.Itoa(i) {
			t.Fatalf("fast subscriber: tick %s at %d", m.Get("N"), i)
		}
	}
	// The reader finished the burst without waiting for slow; the session
	// still answers.
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var delivered, announced uint64
	last := -1
	for delivered+announced < events {
		select {
		case m := <-slow.C():
			switch m.Event() {
			case "Tick":
				n, _ := strconv.Atoi(m.Get("N"))
				if n <= last {
					t.Fatalf("out of order: %d after %d", n, last)
				}
				if gap := uint64(n - last - 1); gap != 0 {
					t.Fatalf("ticks %d..%d missing without a SwitchboardDropped", last+1, n-1)
				}
				last = n
				delivered++
			case EventDropped:
				k, err := strconv.ParseUint(m.Get("Count"), 10, 64)
				if err != nil || k == 0 {
					t.Fatalf("Dropped %q", m.String())
				}
				announced += k
				last += int(k)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("slow subscriber stuck: %d delivered, %d announced", delivered, announced)
		}
	}
	if announced == 0 || slow.Dropped() != announced {
		t.Errorf("announced %d, Dropped() %d", announced, slow.Dropped())
	}
	if fast.Dropped() != 0 {
		t.Errorf("fast subscriber dropped %d", fast.Dropped())
	}
	slow.Close()
	if _, ok := <-slow.C(); ok {
		t.Error("C open after Close")
	}
}

func TestOversizedResponseFailsOnlyItsAction(t *testing.T) {
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if !a.login() {
			return
		}
		for {
			m, err := a.read()
			if err != nil {
				return
			}
			if m.Action() == "Command" {
				a.write("Response: Success\r\nActionID: " + m.ActionID() + "\r\n" + strings.Repeat("Output: 0123456789abcdef\r\n", 200) + "\r\n")
				continue
			}
			a.write(pong(m.ActionID()))
		}
	})
	cfg := testConfig(srv.Addr(), nil)
	cfg.MaxMessageBytes = 2048
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Action(ctxT(t), NewAction("Command", "Command", "core show channels")); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// Every goroutine the client starts is gone after Close or ctx cancel.
func TestNoGoroutineLeak(t *testing.T) {
	srv := newTCPServer(t, func(conn net.Conn, _ int) {
		a := newAMIConn(t, conn)
		if a.login() {
			a.serveBasic()
		}
	})
	settle := func() int {
		// Let goroutines of earlier tests wind down before counting.
		n := runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			time.Sleep(2 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return n
			}
			n = m
		}
		return n
	}
	before := settle()
	for i := 0; i < 3; i++ {
		// Run, ended by ctx.
		c, err := New(testConfig(srv.Addr(), nil))
		if err != nil {
			t.Fatal(err)
		}
		sub := c.Subscribe(1) // never read: its pump must still exit
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		eventually(t, "connected", c.Connected)
		if _, err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
		_ = sub
		c.Close()

		// Dial, ended by Close, with an Originate still waiting.
		d, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
		if err != nil {
			t.Fatal(err)
		}
		d.Subscribe(0)
		if _, err := d.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if _, err := d.Ping(ctxT(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	}
	srv.dropAll()
	eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
