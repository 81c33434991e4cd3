package gateway_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

type rig struct {
	st    *store.Store
	reg   *fleet.Registry
	url   string
	agent store.Agent
	token string
	got   chan []store.StoredEvent
	gw    *gateway.Gateway
}

func newRig(t testing.TB) *rig { return newRigWith(t, nil) }

// newRigWith lets a test change the gateway's configuration.
func newRigWith(t testing.TB, tweak func(*gateway.Config)) *rig {
	t.Helper()
	ctx := context.Background()
	st := storetest.OpenSQLite(t)
	if _, err := st.CreateEnterprise(ctx, "0367", "june"); err != nil {
		t.Fatal(err)
	}
	agent, token, err := st.CreateAgent(ctx, "0367", "pbx-june", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{st: st, reg: fleet.NewRegistry(nil), agent: agent, token: token, got: make(chan []store.StoredEvent, 16)}
	cfg := gateway.Config{Store: st, Registry: r.reg, Heartbeat: time.Second,
		OnEvents: func(_ store.Agent, evs []store.StoredEvent) { r.got <- evs }}
	if tweak != nil {
		tweak(&cfg)
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.gw = gw
	mux := http.NewServeMux()
	mux.Handle("GET "+protocol.ConnectPath, connectHandler(gw))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { gw.Close(); srv.Close() })
	r.url = "ws" + strings.TrimPrefix(srv.URL, "http") + protocol.ConnectPath
	return r
}

// connectHandler serves gw.Connect as the control plane's API does: a
// refusal becomes its status, headers and reason in text.
func connectHandler(gw *gateway.Gateway) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var re *gateway.RefusedError
		if err := gw.Connect(w, r); errors.As(err, &re) {
			for k, v := range re.Header {
				w.Header()[k] = v
			}
			http.Error(w, re.Reason, re.Status)
		}
	})
}

// dial plays an agent: tunnel, Hello, Welcome.
func (r *rig) dial(t *testing.T, ctx context.Context) (*tunnel.Session, net.Conn, protocol.Welcome) {
	t.Helper()
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version, AgentVersion: "test", Hostname: "pbx", AMI: protocol.AMIUp}); err != nil {
		t.Fatal(err)
	}
	var w protocol.Welcome
	if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
		t.Fatal(err)
	}
	return sess, ctrl, w
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRefusedBeforeUpgrade(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	tests := []struct {
		name, token string
		status      int
	}{
		{"unknown token", "sbat_agt_nope_AAAA", http.StatusUnauthorized},
		{"wrong secret", r.token[:len(r.token)-4] + "AAAA", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: tc.token})
			var he *tunnel.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != tc.status {
				t.Fatalf("err = %v, want handshake status %d", err, tc.status)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		resp, err := http.Get("http" + strings.TrimPrefix(r.url, "ws"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		if err := r.st.RevokeAgent(ctx, r.agent.ID); err != nil {
			t.Fatal(err)
		}
		_, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
		if !errors.Is(err, tunnel.ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
	})
	if r.reg.Len() != 0 {
		t.Fatalf("refused agents registered: %d", r.reg.Len())
	}
}

func TestSessionEventsAckedAfterStore(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, ctrl, w := r.dial(t, ctx)
	if w.LastAckedSeq != 0 || w.SessionID == "" || w.HeartbeatSeconds != 1 {
		t.Fatalf("welcome = %+v", w)
	}
	waitFor(t, "registration", func() bool { _, ok := r.reg.Get(r.agent.ID); return ok })

	// Status updates reach the registry.
	if err := protocol.WriteFrame(ctrl, protocol.Status{AMI: protocol.AMIDown, LiveCalls: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status", func() bool {
		c, _ := r.reg.Get(r.agent.ID)
		st, _ := c.Status()
		return st.AMI == protocol.AMIDown && st.LiveCalls == 2
	})

	evs, err := sess.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	batch := protocol.EventBatch{Events: []protocol.Event{{Seq: 1, Type: protocol.EventCallStarted, CallID: "c1"}, {Seq: 2, Type: protocol.EventCallEnded, CallID: "c1"}}}
	if err := protocol.WriteFrame(evs, batch); err != nil {
		t.Fatal(err)
	}
	var ack protocol.Ack
	if err := protocol.ReadFrame(evs, &ack, 0); err != nil || ack.Seq != 2 {
		t.Fatalf("ack = %+v, %v", ack, err)
	}
	// By the time the ack arrives, the events are in the store.
	stored, err := r.st.ListEvents(ctx, store.EventFilter{EnterpriseID: r.agent.EnterpriseID})
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
	if got := <-r.got; len(got) != 2 || got[1].Seq != 2 {
		t.Fatalf("OnEvents got %+v", got)
	}

	// A second connection of the same agent replaces the first, and learns
	// what was acknowledged; resending is deduplicated.
	sess2, _, w2 := r.dial(t, ctx)
	if w2.LastAckedSeq != 2 {
		t.Fatalf("second welcome acked = %d, want 2", w2.LastAckedSeq)
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("replaced session still open")
	}
	waitFor(t, "replacement", func() bool { c, ok := r.reg.Get(r.agent.ID); return ok && c.SessionID == w2.SessionID })
	evs2, err := sess2.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	batch.Events = append(batch.Events, protocol.Event{Seq: 3, Type: protocol.EventCallStarted, CallID: "c2"})
	if err := protocol.WriteFrame(evs2, batch); err != nil {
		t.Fatal(err)
	}
	if err := protocol.ReadFrame(evs2, &ack, 0); err != nil || ack.Seq != 3 {
		t.Fatalf("ack = %+v, %v", ack, err)
	}
	stored, _ = r.st.ListEvents(ctx, store.EventFilter{EnterpriseID: r.agent.EnterpriseID})
	if len(stored) != 3 {
		t.Fatalf("after resend: %d events stored, want 3", len(stored))
	}

	sess2.Close()
	waitFor(t, "unregister", func() bool { return r.reg.Len() == 0 })
}

func TestFirstStreamMustBeControl(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.Open(ctx, protocol.StreamEvents); err != nil {
		select {
		case <-sess.Done(): // the gateway ended the session before the open returned
		case <-time.After(5 * time.Second):
			t.Fatal(err)
		}
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("gateway kept a session that never said hello")
	}
	if r.reg.Len() != 0 {
		t.Fatal("registered without hello")
	}
}

// The control plane runs no yamux keepalive of its own: an agent that
// stops sending Status (a PBX gone without a FIN) is dropped after
// StatusTimeout, and one that keeps sending stays.
func TestSilentAgentDropped(t *testing.T) {
	const timeout = 600 * time.Millisecond
	r := newRigWith(t, func(c *gateway.Config) { c.Heartbeat, c.StatusTimeout = 200*time.Millisecond, timeout })
	ctx := context.Background()
	sess, ctrl, _ := r.dial(t, ctx)
	waitFor(t, "registration", func() bool { return r.reg.Len() == 1 })

	// Status every 200 ms for three timeouts: the session stays.
	var lastStatus time.Time
	for range 3 * int(timeout/(200*time.Millisecond)) {
		if err := protocol.WriteFrame(ctrl, protocol.Status{AMI: protocol.AMIUp}); err != nil {
			t.Fatalf("status write: %v", err)
		}
		lastStatus = time.Now()
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-sess.Done():
		t.Fatal("session dropped although the agent sent its status")
	default:
	}
	if r.reg.Len() != 1 {
		t.Fatal("agent unregistered although it sent its status")
	}

	// Silence: dropped, not sooner than the timeout.
	select {
	case <-sess.Done():
	case <-time.After(10 * timeout):
		t.Fatalf("silent agent still connected after %v", 10*timeout)
	}
	if took := time.Since(lastStatus); took < timeout {
		t.Fatalf("dropped after %v of silence, before the %v timeout", took, timeout)
	}
	waitFor(t, "unregister", func() bool { return r.reg.Len() == 0 })
}

func TestStatusTimeoutMustExceedHeartbeat(t *testing.T) {
	_, err := gateway.New(gateway.Config{Store: storetest.OpenSQLite(t), Registry: fleet.NewRegistry(nil),
		Heartbeat: 15 * time.Second, StatusTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "StatusTimeout 10s must be longer than Heartbeat 15s") {
		t.Fatalf("err = %v", err)
	}
}

// Close ends every session; an agent redialling a closed gateway gets a
// 503 at once.
func TestCloseEndsSessionsAndRefusesNew(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	sess, _, _ := r.dial(t, ctx)
	waitFor(t, "registration", func() bool { return r.reg.Len() == 1 })
	r.gw.Close()
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session open after Close")
	}
	if r.reg.Len() != 0 {
		t.Fatalf("%d agents registered after Close", r.reg.Len())
	}
	_, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
	var he *tunnel.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || !strings.Contains(he.Message, "shutting down") {
		t.Fatalf("dial after Close: %v, want 503 shutting down", err)
	}
}
