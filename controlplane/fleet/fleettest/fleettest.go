// Package fleettest connects fake agents to a fleet.Registry over real
// tunnels on loopback, in the spirit of net/http/httptest: a Server
// accepts tunnels into a Registry, and Connect dials it as an agent that
// answers requests with a handler. For tests of anything that calls
// agents through the fleet (the API, the events hub).
package fleettest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// connectTimeout bounds how long Connect waits for the agent to show up in
// the registry.
const connectTimeout = 10 * time.Second

// Server is a control plane reduced to the tunnel endpoint: bearer token →
// agent, tunnel.Accept, fleet.NewConn, Register, and Unregister when the
// tunnel ends. It skips the hello/welcome exchange; the agent's Hello is
// the one passed to Connect.
type Server struct {
	Registry *fleet.Registry
	URL      string // ws://127.0.0.1:port/agent/v1/connect

	srv      *httptest.Server
	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup
	cfg      tunnel.AcceptConfig

	mu     sync.Mutex
	agents map[string]agentInfo // by token
}

type agentInfo struct {
	id         string
	enterprise int64
	hello      protocol.Hello
}

// NewServer starts a Server feeding reg; it stops with the test.
func NewServer(t testing.TB, reg *fleet.Registry, cfg tunnel.AcceptConfig) *Server {
	t.Helper()
	s := &Server{Registry: reg, cfg: cfg, agents: map[string]agentInfo{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = strings.Replace(s.srv.URL, "http", "ws", 1) + protocol.ConnectPath
	t.Cleanup(s.Close)
	return s
}

// Close disconnects every agent and stops the server.
func (s *Server) Close() {
	s.cancel()
	s.srv.Close()
	s.handlers.Wait()
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	info, ok := s.agents[token]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid agent token", http.StatusUnauthorized)
		return
	}
	// r.Context() ends when this handler returns, which is when the
	// tunnel is gone; s.ctx ends it when the server stops.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	sess, err := tunnel.Accept(ctx, w, r, s.cfg)
	var ve *tunnel.VersionError
	if errors.As(err, &ve) {
		tunnel.RefuseVersion(w, err)
	}
	if err != nil {
		return
	}
	defer sess.Close()
	c := fleet.NewConn(info.id, info.enterprise, sess, info.hello, time.Now())
	s.Registry.Register(c)
	defer s.Registry.Unregister(c)
	select {
	case <-sess.Done():
	case <-ctx.Done():
	}
}

// Agent is a connected fake agent.
type Agent struct {
	ID      string
	Session *tunnel.Session

	cancel context.CancelFunc
	done   chan struct{}
}

// Close disconnects the agent and waits for its request loop to stop.
func (a *Agent) Close() {
	a.cancel()
	_ = a.Session.Close()
	<-a.done
}

// AgentOptions tunes Connect; the zero value is fine.
type AgentOptions struct {
	EnterpriseID int64
	Hello        protocol.Hello
	Dial         tunnel.DialConfig  // URL and Token are filled in
	Serve        tunnel.ServeConfig // for tunnel.ServeRequests
	// NoWait returns as soon as the tunnel is up, without waiting for the
	// registry to hold this connection (for replacement races).
	NoWait bool
}

// Connect dials s as agent id, serves requests with h until the test ends
// or Close, and returns once the registry holds the new connection.
func (s *Server) Connect(t testing.TB, id string, h tunnel.RequestHandler, o AgentOptions) *Agent {
	t.Helper()
	token := "token-" + id
	if o.Hello.Protocol == 0 {
		o.Hello = protocol.Hello{Protocol: protocol.Version, AgentVersion: "fleettest", Hostname: id, AMI: protocol.AMIUp}
	}
	s.mu.Lock()
	s.agents[token] = agentInfo{id: id, enterprise: o.EnterpriseID, hello: o.Hello}
	s.mu.Unlock()

	before, _ := s.Registry.Get(id)
	ctx, cancel := context.WithCancel(context.Background())
	o.Dial.URL, o.Dial.Token = s.URL, token
	if o.Dial.Protocol == 0 {
		o.Dial.Protocol = o.Hello.Protocol // the tunnel agrees with the hello, as the gateway requires
	}
	sess, err := tunnel.Dial(ctx, o.Dial)
	if err != nil {
		cancel()
		t.Fatalf("fleettest: agent %s dial: %v", id, err)
	}
	a := &Agent{ID: id, Session: sess, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		_ = tunnel.ServeRequests(ctx, sess, h, o.Serve)
	}()
	t.Cleanup(a.Close)
	if o.NoWait {
		return a
	}
	deadline := time.Now().Add(connectTimeout)
	for {
		if c, ok := s.Registry.Get(id); ok && c != before {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleettest: agent %s not registered within %v", id, connectTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}
