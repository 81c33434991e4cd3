package controlplanetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// Timeouts of the helper's own waits.
const (
	startTimeout = 30 * time.Second
	pbxTimeout   = 15 * time.Second
)

// Options tune New; the zero value is an SQLite store and default limits.
type Options struct {
	// Engine is "sqlite" (default) or "postgres".
	Engine string
	// API is passed to api.Routes; its Store, Directory, Caller, Logger
	// and Version are filled from the server. When JWT is nil the helper
	// installs an HS256 verifier for Server.JWT.
	API api.Config
	// Logger receives the server's and agents' logs; nil logs to t.Log
	// at Info level.
	Logger *slog.Logger
	// Heartbeat is how often agents send status; default 200 ms so
	// GET /v1/pbxs sees AMI state quickly.
	Heartbeat time.Duration
}

// Server is a running control plane.
type Server struct {
	URL       string // http://127.0.0.1:port
	Store     *store.Store
	CP        *controlplane.Server
	JWTSecret []byte
	Client    *http.Client
	Logger    *slog.Logger

	mu   sync.Mutex
	seq  atomic.Int64
	pbxs []*PBX
}

// New starts a control plane that stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Engine == "" {
		o.Engine = "sqlite"
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 200 * time.Millisecond
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	st := storetest.OpenEngine(t, o.Engine)
	s := &Server{Store: st, Logger: log, JWTSecret: []byte(rand.Text() + rand.Text())}
	if o.API.JWT == nil {
		v, err := auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: s.JWTSecret})
		if err != nil {
			t.Fatalf("controlplanetest: jwt verifier: %v", err)
		}
		o.API.JWT = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cp, err := controlplane.New(ctx, controlplane.Config{
		Listen: "127.0.0.1:0", Store: st, Logger: log, Version: "test", Heartbeat: o.Heartbeat,
		Routes: api.Routes(o.API),
	})
	if err != nil {
		t.Fatalf("controlplanetest: new control plane: %v", err)
	}
	ln, err := cp.Listen()
	if err != nil {
		cp.Close()
		t.Fatalf("controlplanetest: %v", err)
	}
	s.CP, s.URL = cp, "http://"+ln.Addr().String()
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(sctx, ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second}
	s.Client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		stop()
		if err := <-done; err != nil {
			t.Errorf("controlplanetest: serve: %v", err)
		}
		cp.Close()
	})
	return s
}

// Enterprise creates an enterprise.
func (s *Server) Enterprise(t testing.TB, number, name string) store.Enterprise {
	t.Helper()
	e, err := s.Store.CreateEnterprise(context.Background(), number, name)
	if err != nil {
		t.Fatalf("controlplanetest: create enterprise %s: %v", number, err)
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
	_, key, err := s.Store.CreateAPIKey(context.Background(), enterprise, fmt.Sprintf("test key %d", s.seq.Add(1)), scopes)
	if err != nil {
		t.Fatalf("controlplanetest: create API key: %v", err)
	}
	return key
}

// JWT mints an operator token (valid one hour) signed with JWTSecret.
func (s *Server) JWT(t testing.TB, enterprise, subject string, roles ...string) string {
	t.Helper()
	tok, err := auth.MintHS256(s.JWTSecret, auth.OperatorClaims{Subject: subject, Enterprise: enterprise, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatalf("controlplanetest: mint JWT: %v", err)
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
	ag, token, err := s.Store.CreateAgent(ctx, enterprise, o.Name, "inoffice")
	if err != nil {
		t.Fatalf("controlplanetest: create agent: %v", err)
	}
	a, err := agent.New(agent.Config{
		Server:                  "ws" + strings.TrimPrefix(s.URL, "http"),
		Token:                   token,
		AMI:                     ami.Config{Addr: amiSrv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		Context:                 "inoffice",
		Hostname:                o.Hostname,
		Version:                 "test",
		MaxConcurrentOriginates: o.MaxConcurrentOriginates,
		MaxConcurrentRequests:   o.MaxConcurrentRequests,
		ReconnectMin:            20 * time.Millisecond,
		ReconnectMax:            200 * time.Millisecond,
		Logger:                  s.Logger.With("pbx", o.Name),
	})
	if err != nil {
		t.Fatalf("controlplanetest: new agent: %v", err)
	}
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controlplanetest: agent %s: %v", o.Name, err)
			}
			// Wait until the server has noticed, so a test that stops a
			// PBX sees it offline at once.
			deadline := time.Now().Add(pbxTimeout)
			for {
				if _, ok := s.CP.Registry().Get(ag.ID); !ok || time.Now().After(deadline) {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(stop)
	p := &PBX{ID: ag.ID, Name: o.Name, Agent: ag, AMI: amiSrv, stop: stop}
	s.waitReady(t, p)
	s.mu.Lock()
	s.pbxs = append(s.pbxs, p)
	s.mu.Unlock()
	return p
}

// waitReady polls until a ping through the tunnel reaches Asterisk.
func (s *Server) waitReady(t testing.TB, p *PBX) {
	t.Helper()
	deadline := time.Now().Add(pbxTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var res protocol.PingResult
		last = s.CP.Registry().Call(ctx, p.ID, protocol.OpPing, nil, &res)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("controlplanetest: PBX %s not ready within %v: %v", p.Name, pbxTimeout, last)
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
		t.Fatalf("controlplanetest: decode %s: %v", r.Body, err)
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
		t.Fatalf("controlplanetest: %s %s: %v", method, path, err)
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
		err := s.CP.Registry().Call(ctx, pbxID, protocol.OpChannels, nil, &res)
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
	t.Fatalf("controlplanetest: no live channel %s on PBX %s within %v", uniqueid, pbxID, pbxTimeout)
	return protocol.Channel{}
}
