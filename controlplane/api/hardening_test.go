package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// These tests start the whole control plane (systemtest) and need an event
// WebSocket client: the tests of this package may import coder/websocket,
// those of package controlplane may not (internal/depcheck). What they
// test is the assembly's: revocation and the HTTP timeouts.

// TestRevokedKeyLosesItsStreams: revoking an API key in the store closes
// its open /v1/events WebSocket within the key cache TTL with a clear
// reason, and a ticket it was given and has not redeemed is refused.
func TestRevokedKeyLosesItsStreams(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")
	other := s.APIKey(t, "0367")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dial := func(query, token string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		return websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/events"+query, &websocket.DialOptions{HTTPHeader: h})
	}
	stream, _, err := dial("", key)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseNow()
	kept, _, err := dial("", other)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.CloseNow()
	keptErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := kept.Read(ctx); err != nil {
				keptErr <- err
				return
			}
		}
	}()
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	if r := s.Do(t, "POST", "/v1/events/ticket", key, nil); r.Status != http.StatusCreated {
		t.Fatalf("ticket: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &ticket)
	}

	id, _ := auth.ParseAPIKeyID(key)
	if err := s.Store().RevokeAPIKey(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := stream.Read(ctx); err != nil {
				closed <- err
				return
			}
		}
	}()
	select {
	case err := <-closed:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "credential revoked" {
			t.Fatalf("stream ended with %v, want close 1008 \"credential revoked\"", err)
		}
		t.Logf("stream closed %v after the revocation", time.Since(start))
	case <-time.After(api.DefaultKeyCacheTTL):
		t.Fatalf("revoked key's stream still open after %v", api.DefaultKeyCacheTTL)
	}
	if _, resp, err := dial("?ticket="+ticket.Ticket, ""); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked key's ticket: %v %v, want 401", err, resp)
	}
	// The key itself is refused at once too, and another key's stream
	// goes on.
	if r := s.Do(t, "GET", "/v1/pbxs", key, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d", r.Status)
	}
	if err := kept.Ping(ctx); err != nil {
		t.Fatalf("another key's stream: %v", err)
	}
	select {
	case err := <-keptErr:
		t.Fatalf("another key's stream ended: %v", err)
	default:
	}
	if got := s.Metric(t, `switchboard_revocations_enforced_total{what="event_stream"}`); got != 1 {
		t.Fatalf("event_stream revocations = %v, want 1", got)
	}
	if got := s.Metric(t, `switchboard_revocations_enforced_total{what="ticket"}`); got != 1 {
		t.Fatalf("ticket revocations = %v, want 1", got)
	}
}

// TestTimeoutsSpareTunnelsAndStreams: with every HTTP timeout at 200 ms,
// slow headers, slow bodies and idle keep-alives are closed (and counted),
// while an agent tunnel and an event WebSocket, both hijacked, live on.
func TestTimeoutsSpareTunnelsAndStreams(t *testing.T) {
	const d = 200 * time.Millisecond
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{
		ReadHeaderTimeout: d, IdleTimeout: d,
		API: api.Config{BodyTimeout: d, WriteTimeout: d},
	}})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")
	p := s.AddPBX(t, "0367")
	conn, _ := s.CP().Registry().Get(p.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/events",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wsErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				wsErr <- err
				return
			}
		}
	}()
	addr := strings.TrimPrefix(s.URL, "http://")

	// An authenticated body that trickles: 408, and the connection closed.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", key)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("trickled body: %d (close %v), want 408 and close", resp.StatusCode, resp.Close)
	}
	// Slow headers and an idle keep-alive are closed by the server.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /healthz HTTP/1.1\r\n")
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	for name, nc := range map[string]net.Conn{"slow headers": slow, "idle keep-alive": idle} {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("%s: not closed by the server: %v", name, err)
		}
	}

	time.Sleep(5 * d) // well past every timeout
	if cur, ok := s.CP().Registry().Get(p.ID); !ok || cur.SessionID != conn.SessionID {
		t.Fatal("the agent's tunnel did not survive the HTTP timeouts")
	}
	var res protocol.PingResult
	if err := s.CP().Registry().Call(ctx, p.ID, protocol.OpPing, nil, &res); err != nil {
		t.Fatalf("ping through the tunnel: %v", err)
	}
	if err := ws.Ping(ctx); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	select {
	case err := <-wsErr:
		t.Fatalf("event stream ended: %v", err)
	default:
	}
	for _, reason := range []string{"body_timeout", "header_timeout", "idle_timeout"} {
		if s.Metric(t, `switchboard_connections_shed_total{reason="`+reason+`"}`) == 0 {
			t.Errorf("no connection shed for %s", reason)
		}
	}
}
