package systemtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// Timeouts of the helper's own waits.
const (
	startTimeout = 30 * time.Second
	pbxTimeout   = 15 * time.Second
	pollEvery    = 5 * time.Millisecond
)

// Options tune New; the zero value is an SQLite store and default limits.
type Options struct {
	// Engine is "sqlite" (default) or "postgres".
	Engine string
	// Config is the control plane's configuration, as serve builds it;
	// the helper sets Listen, DB and Logger. When Config.API.JWT is nil it
	// installs an HS256 verifier of Server.JWTSecret; Gateway.Heartbeat
	// defaults to 200 ms so GET /v1/pbxs sees AMI state quickly.
	Config controlplane.Config
	// StrictWebhookTargets keeps the SSRF rules; by default webhooks may
	// reach loopback, where tests' receivers listen.
	StrictWebhookTargets bool
	// Logger receives the server's and agents' logs; nil logs to t.Log
	// at Level.
	Logger *slog.Logger
	Level  slog.Level
}

// Server is a running control plane. Restart replaces it with a new one
// on the same database and address, as a process restart would.
type Server struct {
	URL       string // http://127.0.0.1:port, the same across restarts
	JWTSecret []byte
	Client    *http.Client
	Logger    *slog.Logger

	cfg  controlplane.Config
	addr string

	mu  sync.Mutex
	seq atomic.Int64
	cur *instance
}

// instance is one control plane process.
type instance struct {
	cp   *controlplane.Server
	once sync.Once
	stop func()
}

// New starts a control plane that stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	s := newServer(t, o, "", nil)
	s.start(t)
	return s
}

// newServer prepares a control plane on dsn (a new database of o.Engine
// when empty), verifying operator tokens with jwtSecret (a new one when
// nil). It does not start it.
func newServer(t testing.TB, o Options, dsn string, jwtSecret []byte) *Server {
	t.Helper()
	if o.Engine == "" {
		o.Engine = "sqlite"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: o.Level}))
	}
	if jwtSecret == nil {
		jwtSecret = []byte(rand.Text() + rand.Text())
	}
	s := &Server{Logger: log, JWTSecret: jwtSecret, cfg: o.Config}
	if s.cfg.API.JWT == nil {
		v, err := auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: s.JWTSecret})
		if err != nil {
			t.Fatalf("systemtest: jwt verifier: %v", err)
		}
		s.cfg.API.JWT = v
	}
	if s.cfg.Gateway.Heartbeat == 0 {
		s.cfg.Gateway.Heartbeat = 200 * time.Millisecond
	}
	s.cfg.Events.AllowPrivateTargets = !o.StrictWebhookTargets
	if s.cfg.Version == "" {
		s.cfg.Version = "test"
	}
	s.cfg.Logger = log
	switch {
	case dsn != "":
		s.cfg.DB = dsn
	case o.Engine == "sqlite":
		s.cfg.DB = storetest.SQLiteDSN(t)
	default:
		s.cfg.DB = storetest.PostgresDSN(t)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	s.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return s
}

// start runs a control plane on the server's database and address.
func (s *Server) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cfg := s.cfg
	cfg.Listen = s.addr
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cp, err := controlplane.New(ctx, cfg)
	if err != nil {
		t.Fatalf("systemtest: new control plane: %v", err)
	}
	var ln net.Listener
	for {
		if ln, err = cp.Listen(); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(pollEvery) // the previous instance's port, just released
	}
	if err != nil {
		cp.Close()
		t.Fatalf("systemtest: %v", err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(sctx, ln) }()
	in := &instance{cp: cp}
	in.stop = func() {
		in.once.Do(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("systemtest: serve: %v", err)
			}
			cp.Close()
		})
	}
	t.Cleanup(in.stop)
	s.mu.Lock()
	if s.addr == "" {
		s.addr, s.URL = ln.Addr().String(), "http://"+ln.Addr().String()
	}
	s.cur = in
	s.mu.Unlock()
}

// Restart stops the control plane and starts a new one on the same
// database and address; agents redial it by themselves.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.current().stop()
	s.start(t)
}

// Stop stops the control plane gracefully (SIGTERM's path: its agents'
// tunnels close, it deregisters); Restart starts it again.
func (s *Server) Stop() { s.current().stop() }

func (s *Server) current() *instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// CP is the running control plane.
func (s *Server) CP() *controlplane.Server { return s.current().cp }

// Store is the running control plane's store.
func (s *Server) Store() *store.Store { return s.CP().Store() }

// Metric reads one sample of GET /metrics (0 when absent: counters with
// labels appear at their first increment).
func (s *Server) Metric(t testing.TB, series string) float64 {
	t.Helper()
	r := s.Do(t, "GET", "/metrics", "", nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("systemtest: metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// Enterprise creates an enterprise.
func (s *Server) Enterprise(t testing.TB, number, name string) store.Enterprise {
	t.Helper()
	e, err := s.Store().CreateEnterprise(context.Background(), number, name)
	if err != nil {
		t.Fatalf("systemtest: create enterprise %s: %v", number, err)
	}
	return e
}

// APIKey issues a key of the enterprise with scopes (all scopes if none)
// and returns the plain key.
func (s *Server) APIKey(t testing.TB, enterprise string, scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = store.AllowedScopes()
	}
	_, key, err := s.Store().CreateAPIKey(context.Background(), enterprise, fmt.Sprintf("test key %d", s.seq.Add(1)), scopes)
	if err != nil {
		t.Fatalf("systemtest: create API key: %v", err)
	}
	return key
}

// JWT mints an operator token (valid one hour) signed with JWTSecret.
func (s *Server) JWT(t testing.TB, enterprise, subject string, roles ...string) string {
	t.Helper()
	tok, err := auth.MintHS256(s.JWTSecret, auth.OperatorClaims{Subject: subject, Enterprise: enterprise, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatalf("systemtest: mint JWT: %v", err)
	}
	return tok
}

// PBX is a fake Asterisk with a real agent connected to the server.
type PBX struct {
	ID    string // the agent id: "pbx" in the API
	Name  string
	Agent store.Agent
	AMI   *amitest.Server

	stop func()
}

// Stop disconnects the agent (the PBX goes offline) and waits for it.
func (p *PBX) Stop() { p.stop() }

// PBXOptions tune AddPBX.
type PBXOptions struct {
	Name     string // default "pbx-<n>"
	AMI      []amitest.Option
	Hostname string // reported in Hello; default Name
	// MaxConcurrentOriginates is the agent's own cap (agent.Config);
	// zero keeps the agent's default.
	MaxConcurrentOriginates int
	// MaxConcurrentRequests is the agent's cap on requests in flight;
	// zero keeps the agent's default.
	MaxConcurrentRequests int
	// Protocol is the protocol the agent offers (an agent of an older
	// release); zero: protocol.Version.
	Protocol int
	// Ops is the agent's allow-list (agent.Config.Ops); nil: every op.
	Ops []string
	// RecordingsDir is the agent's recordings directory; give the fake
	// amitest.WithRecordings of the same directory to have files there.
	RecordingsDir string
	// Token, when set, is an existing agent's token (the agent record is
	// not created): a second process of that PBX, e.g. reconnecting to
	// another replica.
	Token string
	// Servers are more control-plane URLs the agent may dial (its
	// --server list, tried in random order); the server AddPBX is called
	// on is always one of them.
	Servers []string
}

// AddPBX starts an amitest server and a real agent for it, registered to
// the enterprise, and returns once the agent is connected with AMI up.
func (s *Server) AddPBX(t testing.TB, enterprise string, opts ...PBXOptions) *PBX {
	t.Helper()
	var o PBXOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("pbx-%d", s.seq.Add(1))
	}
	if o.Hostname == "" {
		o.Hostname = o.Name
	}
	amiSrv := amitest.NewServer(t, o.AMI...)
	ctx := context.Background()
	var (
		ag    store.Agent
		token = o.Token
		err   error
	)
	if token != "" {
		ag, err = s.Store().AgentByToken(ctx, token)
	} else {
		ag, token, err = s.Store().CreateAgent(ctx, enterprise, o.Name, "inoffice")
	}
	if err != nil {
		t.Fatalf("systemtest: create agent: %v", err)
	}
	var more []string
	for _, u := range o.Servers {
		more = append(more, "ws"+strings.TrimPrefix(u, "http"))
	}
	a, err := agent.New(agent.Config{
		Server:                  "ws" + strings.TrimPrefix(s.URL, "http"),
		MoreServers:             more,
		Token:                   token,
		AMI:                     ami.Config{Addr: amiSrv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		Context:                 "inoffice",
		Hostname:                o.Hostname,
		Version:                 "test",
		MaxConcurrentOriginates: o.MaxConcurrentOriginates,
		MaxConcurrentRequests:   o.MaxConcurrentRequests,
		Ops:                     o.Ops,
		RecordingsDir:           o.RecordingsDir,
		Tunnel:                  tunnel.DialConfig{Protocol: o.Protocol},
		ReconnectMin:            20 * time.Millisecond,
		ReconnectMax:            200 * time.Millisecond,
		Logger:                  s.Logger.With("pbx", o.Name),
	})
	if err != nil {
		t.Fatalf("systemtest: new agent: %v", err)
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("systemtest: agent %s: %v", o.Name, err)
			}
			// Wait until the server has noticed, so a test that stops a
			// PBX sees it offline at once.
			deadline := time.Now().Add(pbxTimeout)
			for {
				if _, ok := s.CP().Registry().Get(ag.ID); !ok || time.Now().After(deadline) {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(stop)
	p := &PBX{ID: ag.ID, Name: o.Name, Agent: ag, AMI: amiSrv, stop: stop}
	s.WaitReady(t, p)
	return p
}

// WaitReady waits until the PBX is connected (again, after a restart or a
// dropped tunnel) and a ping through the tunnel reaches its Asterisk.
func (s *Server) WaitReady(t testing.TB, p *PBX) {
	t.Helper()
	deadline := time.Now().Add(pbxTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var res protocol.PingResult
		last = s.CP().Cluster().Call(ctx, p.ID, protocol.OpPing, nil, &res) // on the replica holding it
		cancel()
		if last == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("systemtest: PBX %s not ready within %v: %v", p.Name, pbxTimeout, last)
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("systemtest: decode %s: %v", r.Body, err)
	}
}

// Do sends a request with an optional bearer token; body may be nil, a
// []byte / string (sent as is, JSON content type unless headers say
// otherwise) or any other value (JSON-encoded). headers are "Key", "Value"
// pairs.
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) Response {
	t.Helper()
	r, err := s.DoErr(method, path, token, body, headers...)
	if err != nil {
		t.Fatalf("systemtest: %s %s: %v", method, path, err)
	}
	return r
}

// DoErr is Do without a testing.TB, for load loops.
func (s *Server) DoErr(method, path, token string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(headers)%2 != 0 {
		return Response{}, errors.New("headers must be key, value pairs")
	}
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WaitChannel waits until the PBX's agent has a live channel with uniqueid
// in its table (asking through the tunnel, not the HTTP API, so it costs no
// rate-limit tokens) and returns it.
func (s *Server) WaitChannel(t testing.TB, pbxID, uniqueid string) protocol.Channel {
	t.Helper()
	deadline := time.Now().Add(pbxTimeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var res protocol.ChannelsResult
		err := s.CP().Cluster().Call(ctx, pbxID, protocol.OpChannels, nil, &res)
		cancel()
		if err == nil {
			for _, ch := range res.Channels {
				if ch.UniqueID == uniqueid {
					return ch
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("systemtest: no live channel %s on PBX %s within %v", uniqueid, pbxID, pbxTimeout)
	return protocol.Channel{}
}
