package amitest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "bad addr", cfg: Config{Addr: "nope"}, want: "Addr"},
		{name: "context with @", cfg: Config{Context: "a@b"}, want: "Context"},
		{name: "negative ring", cfg: Config{RingDelay: -1}, want: "RingDelay"},
		{name: "tiny message", cfg: Config{MaxMessageBytes: 10}, want: "MaxMessageBytes"},
		{name: "empty user", cfg: Config{Users: map[string]string{"": "x"}}, want: "username"},
		{name: "negative conns", cfg: Config{MaxConnections: -1}, want: "MaxConnections"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoginMD5(t *testing.T) {
	srv := NewServer(t, WithAuthFailDelay(time.Millisecond))
	for _, tc := range []struct {
		name   string
		secret string
		want   string
	}{
		{"right key", DefaultSecret, "Authentication accepted"},
		{"wrong key", "nope", "Authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv)
			ch := c.action("Challenge", "AuthType", "md5").Get("Challenge")
			if ch == "" {
				t.Fatal("no challenge")
			}
			sum := md5.Sum([]byte(ch + tc.secret))
			r := c.action("Login", "AuthType", "md5", "Username", DefaultUsername, "Key", hex.EncodeToString(sum[:]))
			if got := r.Get("Message"); got != tc.want {
				t.Fatalf("login: %q, want %q", got, tc.want)
			}
			if tc.want == "Authentication failed" {
				if err := c.closed(); !isEOF(err) {
					t.Fatalf("connection not closed after a failed login: %v", err)
				}
			}
		})
	}
}

func TestAuthFailDelay(t *testing.T) {
	srv := NewServer(t, WithAuthFailDelay(150*time.Millisecond))
	c := dial(t, srv)
	start := time.Now()
	r := c.action("Login", "Username", "nosuchuser", "Secret", "x")
	if r.Get("Message") != "Authentication failed" {
		t.Fatalf("got %q", r.String())
	}
	// A lower bound only: the delay exists to slow down guessing.
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %v, before the 150ms delay", el)
	}
}

func TestEventsMask(t *testing.T) {
	srv := NewServer(t)
	tests := []struct {
		name      string
		login     string // Login Events header
		mask      string // then an Events action, "" for none
		wantCall  bool
		wantCdr   bool
		wantUser  bool
		wantReply string
	}{
		{name: "login events off", login: "off"},
		{name: "login default", wantCall: true, wantCdr: true, wantUser: true},
		{name: "action off", mask: "off", wantReply: "Off"},
		{name: "action call", mask: "call", wantCall: true, wantReply: "On"},
		{name: "action cdr,user", mask: "cdr,user", wantCdr: true, wantUser: true, wantReply: "On"},
		{name: "login call then on", login: "call", mask: "on", wantCall: true, wantCdr: true, wantUser: true, wantReply: "On"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := login(t, srv, tc.login)
			if tc.mask != "" {
				if got := c.action("Events", "EventMask", tc.mask).Get("Events"); got != tc.wantReply {
					t.Fatalf("Events: %q, want %q", got, tc.wantReply)
				}
			}
			c.barrier()
			c.action("UserEvent", "UserEvent", "probe-"+tc.name)
			id, err := srv.StartCall("150", "151")
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Hangup(id, 16); err != nil {
				t.Fatal(err)
			}
			got := c.barrier()
			has := func(name string) bool {
				return slices.ContainsFunc(got, func(m *ami.Message) bool { return m.Event() == name })
			}
			if has("Newchannel") != tc.wantCall || has("Cdr") != tc.wantCdr || has("UserEvent") != tc.wantUser {
				t.Fatalf("events %v: want call=%v cdr=%v user=%v", names(got), tc.wantCall, tc.wantCdr, tc.wantUser)
			}
		})
	}
}

func TestBeforeLogin(t *testing.T) {
	srv := NewServer(t)
	c := dial(t, srv)
	for _, a := range []string{"Ping", "Originate", "Frobnicate", "Status"} {
		if r := c.action(a); r.Get("Message") != "Permission denied" {
			t.Fatalf("%s before login: %q", a, r.String())
		}
	}
	// Events reach logged-in sessions only.
	if _, err := srv.StartCall("150", "151"); err != nil {
		t.Fatal(err)
	}
	r := c.action("Logoff")
	if r.Response() != "Goodbye" {
		t.Fatalf("logoff: %q", r.String())
	}
	if err := c.closed(); !isEOF(err) {
		t.Fatalf("not closed after Logoff: %v", err)
	}
	for _, m := range c.seen {
		if m.IsEvent() {
			t.Fatalf("unauthenticated session got event %q", m.String())
		}
	}
}

// SetActionDelay holds back one action's Response without blocking the
// actions behind it.
func TestSetActionDelay(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "off")
	srv.SetActionDelay("ping", 300*time.Millisecond)
	slow := c.sendAction("Ping")
	fast := c.sendAction("CoreStatus")
	first := c.next(func(m *ami.Message) bool { return m.IsResponse() })
	if first.ActionID() != fast {
		t.Fatalf("first response is %q, want the undelayed CoreStatus", first.ActionID())
	}
	c.next(func(m *ami.Message) bool { return m.ActionID() == slow })
	srv.SetActionDelay("Ping", 0)
	start := time.Now()
	c.action("Ping")
	if time.Since(start) > 250*time.Millisecond {
		t.Fatal("delay not removed")
	}
}

func TestDropConnectionsAndClients(t *testing.T) {
	srv := NewServer(t)
	a, b := login(t, srv, ""), dial(t, srv)
	eventually(t, "2 clients", func() bool { return srv.ConnectedClients() == 2 })
	srv.DropConnections()
	for _, c := range []*testClient{a, b} {
		if err := c.closed(); err == nil || err.Error() == "connection still open" {
			t.Fatalf("connection survived DropConnections: %v", err)
		}
	}
	eventually(t, "0 clients", func() bool { return srv.ConnectedClients() == 0 })
	// The server keeps serving new clients.
	login(t, srv, "").action("Ping")
}

func TestActionsAndWaitAction(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "off")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	got := make(chan *ami.Message, 1)
	go func() {
		m, err := srv.WaitAction(ctx, "userevent")
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	c.action("UserEvent", "UserEvent", "one")
	c.action("UserEvent", "UserEvent", "two")
	if m := <-got; m.Get("UserEvent") != "one" {
		t.Fatalf("first WaitAction: %q", m.String())
	}
	m, err := srv.WaitAction(ctx, "UserEvent")
	if err != nil || m.Get("UserEvent") != "two" {
		t.Fatalf("second WaitAction: %v %v", m, err)
	}
	short, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	if _, err := srv.WaitAction(short, "UserEvent"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third WaitAction: %v, want deadline exceeded", err)
	}
	var seq []string
	for _, a := range srv.Actions() {
		seq = append(seq, a.Action())
	}
	if want := []string{"Login", "UserEvent", "UserEvent"}; !slices.Equal(seq, want) {
		t.Fatalf("Actions %v, want %v", seq, want)
	}
}

func TestMaxRecordedActions(t *testing.T) {
	srv := NewServer(t, func(c *Config) { c.MaxRecordedActions = 3 })
	c := login(t, srv, "off")
	for i := range 5 {
		c.action("Ping", "X", fmt.Sprint(i))
	}
	acts := srv.Actions()
	if len(acts) != 3 || acts[2].Get("X") != "4" {
		t.Fatalf("kept %d actions, last %q", len(acts), acts[len(acts)-1].String())
	}
}

// Many clients with many actions in flight each: every Response reaches
// the client that asked, exactly once (run with -race).
func TestConcurrentClients(t *testing.T) {
	srv := NewServer(t)
	const clients, perClient = 16, 40
	var wg sync.WaitGroup
	for i := range clients {
		c := login(t, srv, "off")
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := map[string]bool{}
			for j := range perClient {
				var id string
				if j%10 == 0 {
					id = c.sendAction("Originate", "Channel", fmt.Sprintf("Local/%d@inoffice", 200+i), "Application", "Wait", "Data", "1", "Async", "true")
				} else {
					id = c.sendAction("Ping")
				}
				want[id] = true
			}
			for len(want) > 0 {
				m, err := c.nextWithin(waitFor, func(m *ami.Message) bool { return m.IsResponse() })
				if err != nil {
					t.Errorf("client %d: %v (%d responses missing)", i, err, len(want))
					return
				}
				if !want[m.ActionID()] {
					t.Errorf("client %d: unexpected response %q", i, m.ActionID())
					return
				}
				delete(want, m.ActionID())
			}
		}()
	}
	wg.Wait()
	eventually(t, "every originated channel up", func() bool { return len(srv.Channels()) == clients*perClient/10*2 })
}

// Close ends everything the server started, even a session blocked in a
// synchronous Originate and a delayed action.
func TestCloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c := login(t, srv, "")
	srv.SetActionDelay("CoreStatus", time.Hour)
	c.sendAction("CoreStatus")
	c.sendAction("Originate", "Channel", "Local/noanswer@inoffice", "Application", "Wait", "Data", "1", "Timeout", "3600000")
	if _, err := srv.StartCall("150", "noanswer"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "calls ringing", func() bool { return len(srv.Channels()) >= 4 })
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
	if err := c.closed(); !isEOF(err) {
		t.Fatalf("client still connected after Close: %v", err)
	}
	srv.Close() // idempotent
	if _, err := srv.StartCall("1", "2"); !errors.Is(err, ErrClosed) {
		t.Fatalf("StartCall after Close: %v", err)
	}
	eventually(t, "goroutines gone", func() bool { return runtime.NumGoroutine() <= base+1 })
}

func TestMaxQueuedBytesDropsSlowClient(t *testing.T) {
	srv := NewServer(t, func(c *Config) { c.MaxQueuedBytes = 64 << 10 })
	// A client that logs in and then never reads.
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("Action: Login\r\nUsername: switchboard\r\nSecret: switchboard-secret\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := srv.WaitAction(ctx, "Login"); err != nil {
		t.Fatal(err)
	}
	reader := login(t, srv, "off") // a client that keeps up stays
	for i := 0; srv.ConnectedClients() > 1; i++ {
		if i == 20000 {
			t.Fatal("the slow client was never dropped")
		}
		if _, err := srv.StartCall("150", "151"); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			for _, ch := range srv.Channels() {
				_ = srv.Hangup(ch.Uniqueid, 16)
			}
		}
	}
	reader.action("Ping")
}
