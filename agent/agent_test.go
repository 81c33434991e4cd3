package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

const (
	testToken     = "sbat_0123456789abcdef-secret-token"
	testAMISecret = "ami-very-secret"
)

// runAgent starts an agent against the control plane and AMI at amiAddr,
// and stops it (checking Run's result) at the end of the test.
func runAgent(t testing.TB, cp *controlPlane, amiAddr string, logs *testio.Buffer, mod func(*agent.Config)) *agent.Agent {
	t.Helper()
	cfg := agent.Config{
		Server: cp.url(),
		Token:  testToken,
		AMI: ami.Config{
			Addr: amiAddr, Username: "switchboard", Secret: testAMISecret,
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		},
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond,
		Version:      "1.2.3-test",
		Hostname:     "pbx-june",
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		if strings.Contains(logs.String(), testToken) || strings.Contains(logs.String(), testAMISecret) {
			t.Error("a secret appeared in the logs")
		}
	})
	return a
}

func fakeAsterisk(t testing.TB, addr string) *amitest.Server {
	t.Helper()
	srv, err := amitest.New(amitest.Config{Addr: addr, Users: map[string]string{"switchboard": testAMISecret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func waitAction(t testing.TB, srv *amitest.Server, name string) *ami.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := srv.WaitAction(ctx, name)
	if err != nil {
		t.Fatalf("waiting for %s: %v", name, err)
	}
	return m
}

func decode[T any](t testing.TB, resp protocol.Response) T {
	t.Helper()
	var v T
	if resp.Error != nil {
		t.Fatalf("response error %v", resp.Error)
	}
	if err := json.Unmarshal(resp.Result, &v); err != nil {
		t.Fatalf("decode %s: %v", resp.Result, err)
	}
	return v
}

func TestAgentEndToEnd(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	a := runAgent(t, cp, srv.Addr(), logs, nil)

	// Hello/Welcome, login, first resync.
	waitAction(t, srv, "Login")
	waitAction(t, srv, "CoreShowChannels")
	eventually(t, "a session", func() bool { return cp.session() != nil })
	cp.mu.Lock()
	hello := cp.hellos[0]
	cp.mu.Unlock()
	if hello.Protocol != protocol.Version || hello.AgentVersion != "1.2.3-test" || hello.Hostname != "pbx-june" || hello.Context != "inoffice" {
		t.Errorf("hello %+v", hello)
	}
	eventually(t, "a status with AMI up", func() bool {
		st, _ := cp.lastStatus()
		return st.AMI == protocol.AMIUp && st.AsteriskVersion != ""
	})

	// A ping round trip through tunnel, agent and AMI.
	ping := decode[protocol.PingResult](t, cp.call(t, protocol.OpPing, nil))
	if ping.AMIRoundTripMicros <= 0 {
		t.Errorf("ping %+v", ping)
	}

	// An originate arrives at Asterisk well formed; its events come up in
	// order, numbered from 1.
	orig := decode[protocol.OriginateResult](t, cp.call(t, protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "+375296254070"}))
	sent := waitAction(t, srv, "Originate")
	if sent.Get("ChannelId") != orig.CallID || sent.Get("Data") != "Local/+375296254070@inoffice" {
		t.Errorf("originate sent %s for %+v", sent, orig)
	}
	eventually(t, "call.answered of the originated call", func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		for _, ev := range cp.stored {
			if ev.Type == protocol.EventCallAnswered && ev.CallID == orig.CallID {
				return true
			}
		}
		return false
	})
	first := cp.storedInOrder(t)
	if first[0].Type != protocol.EventCallStarted || first[0].CallID != orig.CallID {
		t.Errorf("first event %+v, want call.started of %s", first[0], orig.CallID)
	}
	chans := decode[protocol.ChannelsResult](t, cp.call(t, protocol.OpChannels, nil))
	if len(chans.Channels) != len(srv.Channels()) || len(chans.Channels) == 0 {
		t.Errorf("channels: agent %d, Asterisk %d", len(chans.Channels), len(srv.Channels()))
	}

	// Events the control plane does not acknowledge are resent after the
	// tunnel drops, and the stored sequence has no hole and no reordering.
	cp.setAck(false)
	hung := decode[protocol.HangupResult](t, cp.call(t, protocol.OpHangup, protocol.HangupArgs{UniqueID: orig.CallID}))
	if len(hung.Hungup) != 1 || hung.Hungup[0].UniqueID != orig.CallID {
		t.Errorf("hangup %+v", hung)
	}
	eventually(t, "call.ended to arrive unacknowledged", func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		for _, ev := range cp.received {
			if ev.Type == protocol.EventCallEnded && ev.CallID == orig.CallID {
				return true
			}
		}
		return false
	})
	if a.Outbox().Len() == 0 {
		t.Fatal("agent dropped events the control plane never acknowledged")
	}
	cp.mu.Lock()
	receivedBefore := len(cp.received)
	cp.mu.Unlock()
	cp.setAck(true)
	cp.dropSession()
	eventually(t, "the agent to redial", func() bool { return cp.sessionCount() >= 2 && cp.session() != nil })
	eventually(t, "resent events to be acknowledged", func() bool { return a.Outbox().Len() == 0 })
	cp.mu.Lock()
	resent := len(cp.received) - receivedBefore
	cp.mu.Unlock()
	if resent == 0 {
		t.Error("nothing was resent after the reconnect")
	}
	all := cp.storedInOrder(t)
	ended := false
	for _, ev := range all {
		if ev.Type == protocol.EventCallEnded && ev.CallID == orig.CallID {
			ended = true
		}
	}
	if !ended {
		t.Errorf("call.ended missing from stored events %v", types(all))
	}

	// Asterisk restarts (connections cut): the agent logs in again and
	// rebuilds its table from CoreShowChannels.
	if _, err := srv.StartCall("160", "161"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second call in the table", func() bool { _, ok := a.Channels().LiveForExtension("160"); return ok })
	srv.DropConnections()
	waitAction(t, srv, "Login")
	waitAction(t, srv, "CoreShowChannels")
	eventually(t, "the table to match Asterisk after the resync", func() bool {
		return a.Channels().Synced() && len(a.Channels().List()) == len(srv.Channels())
	})
	eventually(t, "a status with the live call", func() bool {
		st, _ := cp.lastStatus()
		return st.AMI == protocol.AMIUp && st.LiveChannels == len(srv.Channels()) && st.LiveCalls == 1
	})
}

// TestAgentAMIDown: the tunnel is up while Asterisk is not; status says so
// and requests fail with ami_down; when Asterisk appears the agent logs in
// by itself.
func TestAgentAMIDown(t *testing.T) {
	logs := &testio.Buffer{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: AMI is down
	cp := newControlPlane(t, testToken)
	runAgent(t, cp, addr, logs, nil)
	eventually(t, "a session", func() bool { return cp.session() != nil })
	eventually(t, "a status with AMI down", func() bool { st, _ := cp.lastStatus(); return st.AMI == protocol.AMIDown })
	for _, op := range []string{protocol.OpPing, protocol.OpChannels} {
		resp := cp.call(t, op, nil)
		if resp.Error == nil || resp.Error.Code != protocol.ErrCodeAMIDown {
			t.Errorf("%s with AMI down: %+v", op, resp)
		}
	}
	resp := cp.call(t, protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"})
	if resp.Error == nil || resp.Error.Code != protocol.ErrCodeAMIDown {
		t.Errorf("originate with AMI down: %+v", resp)
	}

	srv := fakeAsterisk(t, addr)
	waitAction(t, srv, "Login")
	eventually(t, "a status with AMI up", func() bool { st, _ := cp.lastStatus(); return st.AMI == protocol.AMIUp })
	if resp := cp.call(t, protocol.OpPing, nil); resp.Error != nil {
		t.Errorf("ping after AMI came up: %v", resp.Error)
	}
}

// TestAgentRestartRenumbers: a new agent process (numbering from 1 again)
// meets a control plane that stored events of the previous one; its
// events continue after the stored sequence instead of being taken for
// duplicates.
func TestAgentRestartRenumbers(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	cp.mu.Lock()
	cp.lastAcked = 500
	cp.mu.Unlock()
	if _, err := srv.StartCall("150", "151"); err != nil {
		t.Fatal(err)
	}
	runAgent(t, cp, srv.Addr(), logs, nil)
	eventually(t, "events of the call found at startup", func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return len(cp.stored) > 0
	})
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for seq := range cp.stored {
		if seq <= 500 {
			t.Errorf("event numbered %d, at or below the control plane's 500", seq)
		}
	}
	if _, ok := cp.stored[501]; !ok {
		t.Errorf("numbering does not continue at 501: %v", cp.stored)
	}
}

func TestAgentBadToken(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, "another-token")
	runAgent(t, cp, srv.Addr(), logs, func(c *agent.Config) { c.ReconnectMax = 20 * time.Millisecond })
	eventually(t, "the refusal to be logged", func() bool {
		return strings.Contains(logs.String(), "control plane refused the agent token")
	})
	if cp.sessionCount() != 0 {
		t.Error("session opened with a bad token")
	}
}

func TestConfigValidate(t *testing.T) {
	good := agent.Config{Server: "wss://cp.example.com", Token: "t", AMI: ami.Config{Username: "u"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*agent.Config)
		want string
	}{
		{"no server", func(c *agent.Config) { c.Server = "" }, "Server is empty"},
		{"bad scheme", func(c *agent.Config) { c.Server = "ftp://x" }, "scheme"},
		{"empty replica", func(c *agent.Config) { c.MoreServers = []string{"wss://cp2.example.com", ""} }, "MoreServers[1] is empty"},
		{"bad replica", func(c *agent.Config) { c.MoreServers = []string{"ftp://cp2"} }, "scheme"},
		{"credentials in url", func(c *agent.Config) { c.Server = "wss://u:p@x" }, "credentials"},
		{"no token", func(c *agent.Config) { c.Token = "" }, "Token is empty"},
		{"token newline", func(c *agent.Config) { c.Token = "t\n" }, "line breaks"},
		{"bad context", func(c *agent.Config) { c.Context = "a b" }, "context"},
		{"tiny outbox", func(c *agent.Config) { c.MaxPendingEvents = 1 }, "MaxPending"},
		{"negative", func(c *agent.Config) { c.MaxEventsPerBatch = -1 }, "MaxEventsPerBatch"},
		{"backoff", func(c *agent.Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Second }, "ReconnectMax"},
		{"missing ca file", func(c *agent.Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
		{"tiny batch", func(c *agent.Config) { c.MaxBatchBytes = 1000 }, "MaxBatchBytes 1000 must be 4096 to 1048576"},
		{"batch over the frame limit", func(c *agent.Config) { c.MaxBatchBytes = 2 << 20 }, "MaxBatchBytes 2097152"},
		{"in flight below a batch", func(c *agent.Config) { c.MaxBatchBytes, c.MaxInFlightBytes = 64<<10, 8<<10 }, "MaxInFlightBytes 8192 must be at least MaxBatchBytes"},
		{"in flight over the window", func(c *agent.Config) { c.MaxInFlightBytes = 1 << 20 }, "MaxInFlightBytes 1048576"},
		{"tiny field limit", func(c *agent.Config) { c.MaxEventFieldBytes = 10 }, "MaxEventFieldBytes"},
		{"confirmation too short", func(c *agent.Config) { c.ConfirmTimeout = 10 * time.Millisecond }, "ConfirmTimeout 10ms is outside 100ms..1m"},
		{"negative confirmation", func(c *agent.Config) { c.ConfirmTimeout = -time.Second }, "ConfirmTimeout -1s is outside"},
		{"negative recordings limit", func(c *agent.Config) { c.MaxActiveRecordings = -1 }, "MaxActiveRecordings -1 is negative"},
		{"unknown op", func(c *agent.Config) { c.Ops = []string{"originate", "recordng_start"} }, `Ops: unknown operation "recordng_start"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
			if _, err := agent.New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestConfigDerivedDefaults: the defaults that depend on another setting
// follow it, and what Validate accepts is what fill produces.
func TestConfigDerivedDefaults(t *testing.T) {
	good := agent.Config{Server: "wss://cp.example.com", Token: "t", AMI: ami.Config{Username: "u"}}
	cases := []struct {
		name                    string
		mod                     func(*agent.Config)
		batch, inFlight         int
		reconnectMin, reconnect time.Duration
	}{
		{"zero", func(*agent.Config) {}, agent.DefaultMaxBatchBytes, agent.DefaultMaxInFlightBytes, agent.DefaultReconnectMin, agent.DefaultReconnectMax},
		{"batch above the in-flight default", func(c *agent.Config) { c.MaxBatchBytes = 200 << 10 }, 200 << 10, 200 << 10, agent.DefaultReconnectMin, agent.DefaultReconnectMax},
		{"in flight set", func(c *agent.Config) { c.MaxInFlightBytes = 100 << 10 }, agent.DefaultMaxBatchBytes, 100 << 10, agent.DefaultReconnectMin, agent.DefaultReconnectMax},
		{"backoff floor above the ceiling's default", func(c *agent.Config) { c.ReconnectMin = time.Hour }, agent.DefaultMaxBatchBytes, agent.DefaultMaxInFlightBytes, time.Hour, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			f := agent.Filled(c)
			if f.MaxBatchBytes != tc.batch || f.MaxInFlightBytes != tc.inFlight || f.ReconnectMin != tc.reconnectMin || f.ReconnectMax != tc.reconnect {
				t.Errorf("filled batch %d in flight %d backoff %v..%v; want %d %d %v..%v", f.MaxBatchBytes, f.MaxInFlightBytes,
					f.ReconnectMin, f.ReconnectMax, tc.batch, tc.inFlight, tc.reconnectMin, tc.reconnect)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	a, err := agent.New(agent.Config{Server: "ws://127.0.0.1:1", Token: "t", AMI: ami.Config{Addr: "127.0.0.1:1", Username: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- a.Run(ctx) }()
	}
	// Whichever call came second is refused at once.
	select {
	case err := <-results:
		if !errors.Is(err, agent.ErrAlreadyRunning) {
			t.Errorf("first Run to return: %v, want ErrAlreadyRunning", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("neither Run was refused")
	}
	cancel()
	select {
	case err := <-results:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func types(evs []protocol.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type + ":" + e.CallID
	}
	return out
}
