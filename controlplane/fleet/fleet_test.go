package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet/fleettest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// pbx answers like a tiny agent: ping, hangup of one known channel, and a
// "slow" op that waits for the deadline.
func pbx(name string) tunnel.RequestHandler {
	return func(ctx context.Context, req protocol.Request) (any, error) {
		switch req.Op {
		case protocol.OpPing:
			return protocol.PingResult{AMIRoundTripMicros: 7}, nil
		case protocol.OpHangup:
			var args protocol.HangupArgs
			if err := json.Unmarshal(req.Args, &args); err != nil {
				return nil, &protocol.Error{Code: protocol.ErrCodeInvalid, Message: err.Error()}
			}
			if args.Channel != "PJSIP/150-00000001" {
				return nil, &protocol.Error{Code: protocol.ErrCodeNotFound, Message: "no such channel"}
			}
			return protocol.HangupResult{Hungup: []protocol.HungupChannel{{Channel: args.Channel + "@" + name}}}, nil
		case "deadline":
			return req.Deadline, nil
		case "ami-timeout":
			return nil, &protocol.Error{Code: protocol.ErrCodeTimeout, Message: "AMI did not answer"}
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, &protocol.Error{Code: protocol.ErrCodeUnsupported, Message: req.Op}
	}
}

func TestCall(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	srv.Connect(t, "pbx-1", pbx("pbx-1"), fleettest.AgentOptions{EnterpriseID: 367})

	t.Run("result", func(t *testing.T) {
		var res protocol.HangupResult
		err := reg.Call(withDeadline(t), "pbx-1", protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/150-00000001"}, &res)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hungup) != 1 || res.Hungup[0].Channel != "PJSIP/150-00000001@pbx-1" {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("agent error is a *protocol.Error", func(t *testing.T) {
		err := reg.Call(withDeadline(t), "pbx-1", protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/999"}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.ErrCodeNotFound {
			t.Fatalf("err = %v, want *protocol.Error not_found", err)
		}
	})
	t.Run("no deadline is refused, nothing sent", func(t *testing.T) {
		if err := reg.Call(context.Background(), "pbx-1", "deadline", nil, nil); !errors.Is(err, fleet.ErrNoDeadline) {
			t.Fatalf("err = %v, want ErrNoDeadline", err)
		}
	})
	t.Run("caller's deadline is sent", func(t *testing.T) {
		want := time.Now().Add(1500 * time.Millisecond)
		ctx, cancel := context.WithDeadline(context.Background(), want)
		defer cancel()
		var got time.Time
		if err := reg.Call(ctx, "pbx-1", "deadline", nil, &got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want) {
			t.Fatalf("agent saw deadline %v, want %v", got, want)
		}
	})
	t.Run("deadline honoured", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := reg.Call(ctx, "pbx-1", "slow", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("agent timeout is a deadline", func(t *testing.T) {
		err := reg.Call(withDeadline(t), "pbx-1", "ami-timeout", nil, nil)
		var pe *protocol.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &pe) || pe.Code != protocol.ErrCodeTimeout {
			t.Fatalf("err = %v, want DeadlineExceeded and *protocol.Error timeout", err)
		}
	})
	t.Run("cancellation honoured", func(t *testing.T) {
		ctx, cancel := context.WithCancel(withDeadline(t))
		time.AfterFunc(50*time.Millisecond, cancel)
		err := reg.Call(ctx, "pbx-1", "slow", nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	})
	t.Run("unencodable args", func(t *testing.T) {
		if err := reg.Call(withDeadline(t), "pbx-1", protocol.OpPing, make(chan int), nil); err == nil {
			t.Fatal("want error")
		}
	})
	// The agent is still healthy after all of that.
	if err := reg.Call(withDeadline(t), "pbx-1", protocol.OpPing, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestOfflineFailsFast(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	a := srv.Connect(t, "pbx-1", pbx("pbx-1"), fleettest.AgentOptions{})
	srv.Connect(t, "pbx-2", pbx("pbx-2"), fleettest.AgentOptions{})

	// A context with no deadline: if Call waited for the agent, this
	// test would hang until the package timeout.
	if err := reg.Call(withDeadline(t), "pbx-9", protocol.OpPing, nil, nil); !errors.Is(err, fleet.ErrOffline) {
		t.Fatalf("unknown agent: %v, want ErrOffline", err)
	}

	c, _ := reg.Get("pbx-1")
	a.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("control plane did not notice the agent left")
	}
	// A stale *Conn held by a caller fails fast too.
	if err := c.Call(withDeadline(t), protocol.OpPing, nil, nil); !errors.Is(err, fleet.ErrOffline) {
		t.Fatalf("call on a dead conn: %v, want ErrOffline", err)
	}
	waitFor(t, func() bool { _, ok := reg.Get("pbx-1"); return !ok })
	if err := reg.Call(withDeadline(t), "pbx-1", protocol.OpPing, nil, nil); !errors.Is(err, fleet.ErrOffline) {
		t.Fatalf("disconnected agent: %v, want ErrOffline", err)
	}
	// Never routed elsewhere: the other PBX is untouched and still works.
	if err := reg.Call(withDeadline(t), "pbx-2", protocol.OpPing, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReplacement(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	old := srv.Connect(t, "pbx-1", pbx("old"), fleettest.AgentOptions{})
	oldConn, _ := reg.Get("pbx-1")
	srv.Connect(t, "pbx-1", pbx("new"), fleettest.AgentOptions{})
	newConn, _ := reg.Get("pbx-1")
	if newConn == oldConn || newConn.SessionID == oldConn.SessionID {
		t.Fatal("second connection did not replace the first")
	}
	// The replaced tunnel is closed at both ends.
	for name, done := range map[string]<-chan struct{}{"control plane": oldConn.Done(), "agent": old.Session.Done()} {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("replaced tunnel still open at the %s", name)
		}
	}
	// The old connection's Unregister (its handler ending) must not
	// remove the new one.
	reg.Unregister(oldConn)
	if c, ok := reg.Get("pbx-1"); !ok || c != newConn || reg.Len() != 1 {
		t.Fatal("Unregister of the replaced conn removed its successor")
	}
	var res protocol.HangupResult
	if err := reg.Call(withDeadline(t), "pbx-1", protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/150-00000001"}, &res); err != nil {
		t.Fatal(err)
	}
	if got := res.Hungup[0].Channel; got != "PJSIP/150-00000001@new" {
		t.Fatalf("request went to %q, want the new connection", got)
	}
}

func TestListAndStatus(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	ids := []string{"pbx-c", "pbx-a", "pbx-b"}
	for i, id := range ids {
		srv.Connect(t, id, pbx(id), fleettest.AgentOptions{EnterpriseID: int64(i + 1)})
	}
	var got []string
	for _, c := range reg.List() {
		got = append(got, c.AgentID)
	}
	if !slices.Equal(got, []string{"pbx-a", "pbx-b", "pbx-c"}) || reg.Len() != 3 {
		t.Fatalf("List = %v", got)
	}
	c, _ := reg.Get("pbx-b")
	if c.EnterpriseID != 3 || c.Hello.Hostname != "pbx-b" {
		t.Fatalf("conn %+v", c)
	}
	if _, at := c.Status(); !at.IsZero() {
		t.Fatal("status before any was reported")
	}
	at := time.Now()
	c.SetStatus(protocol.Status{AMI: protocol.AMIDown, AMIError: "connection refused", LiveCalls: 2}, at)
	st, gotAt := c.Status()
	if st.AMI != protocol.AMIDown || st.LiveCalls != 2 || !gotAt.Equal(at) {
		t.Fatalf("Status = %+v at %v", st, gotAt)
	}
}

func TestConcurrentCalls(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	const agents, callsEach = 5, 40
	for i := range agents {
		srv.Connect(t, fmt.Sprint("pbx-", i), pbx(fmt.Sprint(i)), fleettest.AgentOptions{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, agents*callsEach)
	for i := range agents {
		for range callsEach {
			wg.Go(func() {
				var res protocol.HangupResult
				err := reg.Call(withDeadline(t), fmt.Sprint("pbx-", i), protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/150-00000001"}, &res)
				if err == nil && res.Hungup[0].Channel != fmt.Sprintf("PJSIP/150-00000001@%d", i) {
					err = fmt.Errorf("pbx-%d answered by %s", i, res.Hungup[0].Channel)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkCall is Registry.Call over a loopback tunnel against a handler
// that answers at once: the tunnel's share of an API ping.
func BenchmarkCall(b *testing.B) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(b, reg, tunnel.AcceptConfig{})
	srv.Connect(b, "pbx-1", func(context.Context, protocol.Request) (any, error) {
		return protocol.PingResult{AMIRoundTripMicros: 1}, nil
	}, fleettest.AgentOptions{})
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		var res protocol.PingResult
		// Calls need a deadline (as the API's have: its AMI timeout).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := reg.Call(ctx, "pbx-1", protocol.OpPing, nil, &res)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkConnectedAgentMemory connects 1,000 agents and reports the heap
// they hold. Both ends live in this process, so bytes/agent covers the
// control plane's Conn, yamux server and WebSocket and the agent's side.
func BenchmarkConnectedAgentMemory(b *testing.B) {
	const agents = 1000
	for b.Loop() {
		reg := fleet.NewRegistry(nil)
		srv := fleettest.NewServer(b, reg, tunnel.AcceptConfig{})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		goroutinesBefore := runtime.NumGoroutine()
		conns := make([]*fleettest.Agent, 0, agents)
		for i := range agents {
			conns = append(conns, srv.Connect(b, fmt.Sprint("pbx-", i), pbx("x"), fleettest.AgentOptions{}))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/agents, "heap-B/agent")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/agents, "stack-B/agent")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutinesBefore)/agents, "goroutines/agent")
		if reg.Len() != agents {
			b.Fatalf("%d agents registered", reg.Len())
		}
		for _, a := range conns {
			a.Close()
		}
		srv.Close()
	}
}

// withDeadline is the deadline the API gives every request.
func withDeadline(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An op newer than the agent's protocol is refused per request, before
// anything is sent, and the tunnel keeps serving the ops the agent has.
func TestCallOpNewerThanAgent(t *testing.T) {
	const op = "test_v2_op"
	fleet.SetOpMinVersion(t, op, 2)
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	var mu sync.Mutex
	got := map[string][]string{} // agent → ops it received
	handler := func(name string) tunnel.RequestHandler {
		return func(ctx context.Context, req protocol.Request) (any, error) {
			mu.Lock()
			got[name] = append(got[name], req.Op)
			mu.Unlock()
			if req.Op == op {
				return "done", nil
			}
			return pbx(name)(ctx, req)
		}
	}
	received := func(name string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got[name])
	}
	srv.Connect(t, "pbx-old", handler("pbx-old"), fleettest.AgentOptions{
		Hello: protocol.Hello{Protocol: 1, AgentVersion: "1.2.0", Hostname: "old", AMI: protocol.AMIUp}})
	srv.Connect(t, "pbx-new", handler("pbx-new"), fleettest.AgentOptions{
		Hello: protocol.Hello{Protocol: 2, AgentVersion: "2.0.0", Hostname: "new", AMI: protocol.AMIUp}})

	if c, _ := reg.Get("pbx-old"); c.Protocol != 1 {
		t.Fatalf("Conn.Protocol = %d, want 1 from the agent's hello", c.Protocol)
	}
	err := reg.Call(withDeadline(t), "pbx-old", op, nil, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.ErrCodeAgentTooOld {
		t.Fatalf("err = %v, want *protocol.Error %s", err, protocol.ErrCodeAgentTooOld)
	}
	if want := "agent 1.2.0 speaks protocol 1; test_v2_op needs protocol 2: upgrade the agent"; pe.Message != want {
		t.Fatalf("message %q, want %q", pe.Message, want)
	}
	if errors.Is(err, fleet.ErrOffline) {
		t.Fatal("a refused op must not look like an offline PBX")
	}
	// The old agent still does what it can, on the same tunnel.
	if err := reg.Call(withDeadline(t), "pbx-old", protocol.OpPing, nil, nil); err != nil {
		t.Fatalf("ping on the old agent after the refusal: %v", err)
	}
	if ops := received("pbx-old"); !slices.Equal(ops, []string{protocol.OpPing}) {
		t.Fatalf("old agent received %v, want only the ping", ops)
	}
	var res string
	if err := reg.Call(withDeadline(t), "pbx-new", op, nil, &res); err != nil || res != "done" {
		t.Fatalf("new agent: %q, %v", res, err)
	}
}

// TestRevoke: a revoked agent leaves the registry at once (Len, Get and
// List stop counting it before its tunnel has finished closing) and its
// tunnel is closed at both ends; the other agents are untouched.
func TestRevoke(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	a := srv.Connect(t, "pbx-1", pbx("pbx-1"), fleettest.AgentOptions{})
	srv.Connect(t, "pbx-2", pbx("pbx-2"), fleettest.AgentOptions{})
	c, _ := reg.Get("pbx-1")

	if !reg.Revoke("pbx-1") {
		t.Fatal("Revoke of a connected agent reported none")
	}
	if _, ok := reg.Get("pbx-1"); ok || reg.Len() != 1 || len(reg.List()) != 1 {
		t.Fatalf("after Revoke: Len %d, List %d; want the revoked agent gone at once", reg.Len(), len(reg.List()))
	}
	for name, done := range map[string]<-chan struct{}{"control plane": c.Done(), "agent": a.Session.Done()} {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("revoked agent's tunnel still open at the %s", name)
		}
	}
	// Its handler's Unregister afterwards changes nothing.
	reg.Unregister(c)
	if reg.Revoke("pbx-1") || reg.Len() != 1 {
		t.Fatal("second Revoke found a connection")
	}
	if err := reg.Call(withDeadline(t), "pbx-2", protocol.OpPing, nil, nil); err != nil {
		t.Fatal(err)
	}
}
