package events_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// The helpers' own waits.
const (
	waitTimeout = 20 * time.Second
	pollEvery   = 5 * time.Millisecond
)

// env is a control plane (api + events routes, the events worker) on a
// store that outlives it: restart replaces the server and the events
// service, keeps the database and the address, as a process restart would.
// controlplanetest starts one server with the api routes only, so the
// events tests have this helper of their own.
type env struct {
	t         testing.TB
	engine    string
	strict    bool // webhooks may not reach private addresses
	dsn       string
	cfg       events.Config
	jwtSecret []byte
	logger    *slog.Logger
	client    *http.Client

	mu   sync.Mutex
	addr string // fixed after the first start, so agents redial the restarted server
	cp   *cpInstance
	seq  int
}

type cpInstance struct {
	st   *store.Store
	srv  *controlplane.Server
	svc  *events.Service
	stop func()
}

type envOptions struct {
	engine string
	cfg    events.Config
	quiet  bool // logs at Warn only (benchmarks, the fault test)
	// strictTargets keeps the default SSRF rules; otherwise webhooks may
	// reach loopback, where the tests' receivers listen.
	strictTargets bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.engine == "" {
		o.engine = "sqlite"
	}
	e := &env{t: t, engine: o.engine, strict: o.strictTargets, cfg: o.cfg, jwtSecret: []byte(rand.Text() + rand.Text())}
	if o.engine == "sqlite" {
		e.dsn = storetest.SQLiteDSN(t)
	} else {
		e.dsn = storetest.PostgresDSN(t)
	}
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	e.logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	e.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	e.start(t)
	return e
}

// start runs a new control plane and events service on the env's store
// and address.
func (e *env) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := store.Open(ctx, e.dsn, e.logger)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	jwt, err := auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: e.jwtSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.JWT = jwt
	cfg.AllowPrivateTargets = !e.strict
	svc, err := events.New(cfg)
	if err != nil {
		t.Fatalf("events.New: %v", err)
	}
	apiRoutes := api.Routes(api.Config{JWT: jwt, RateLimit: ratelimit.Config{PerCredential: rate.Limit(1e6), CredentialBurst: 1e6,
		PerEnterprise: rate.Limit(1e6), EnterpriseBurst: 1e6}})
	e.mu.Lock()
	listen := e.addr
	e.mu.Unlock()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	srv, err := controlplane.New(ctx, controlplane.Config{Listen: listen, Store: st, Logger: e.logger, Version: "test",
		Heartbeat: 200 * time.Millisecond,
		Routes: func(mux *http.ServeMux, s *controlplane.Server) error {
			if err := apiRoutes(mux, s); err != nil {
				return err
			}
			return svc.Routes(mux, s)
		}})
	if err != nil {
		st.Close()
		t.Fatalf("controlplane.New: %v", err)
	}
	var ln net.Listener
	for {
		if ln, err = srv.Listen(); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(pollEvery) // the previous instance's port, just released
	}
	if err != nil {
		srv.Close()
		st.Close()
		t.Fatal(err)
	}
	sctx, stopAll := context.WithCancel(context.Background())
	served, ran := make(chan error, 1), make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	go func() { ran <- svc.Run(sctx) }()
	var once sync.Once
	inst := &cpInstance{st: st, srv: srv, svc: svc}
	inst.stop = func() {
		once.Do(func() {
			stopAll()
			if err := <-served; err != nil {
				t.Errorf("serve: %v", err)
			}
			if err := <-ran; err != nil {
				t.Errorf("events run: %v", err)
			}
			srv.Close()
			st.Close()
		})
	}
	t.Cleanup(inst.stop)
	e.mu.Lock()
	e.addr, e.cp = ln.Addr().String(), inst
	e.mu.Unlock()
}

// restart stops the control plane and starts a new one on the same store
// and address.
func (e *env) restart(t testing.TB) {
	t.Helper()
	e.current().stop()
	e.start(t)
}

func (e *env) current() *cpInstance {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cp
}

func (e *env) store() *store.Store { return e.current().st }
func (e *env) url() string         { e.mu.Lock(); defer e.mu.Unlock(); return "http://" + e.addr }

// tenant is an enterprise with credentials.
type tenant struct {
	ent store.Enterprise
	key string // every scope
}

func (e *env) tenant(t testing.TB, number string) *tenant {
	t.Helper()
	ctx := context.Background()
	ent, err := e.store().CreateEnterprise(ctx, number, "enterprise "+number)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := e.store().CreateAPIKey(ctx, number, "all", store.AllowedScopes())
	if err != nil {
		t.Fatal(err)
	}
	return &tenant{ent: ent, key: key}
}

func (e *env) apiKey(t testing.TB, number string, scopes ...string) string {
	t.Helper()
	_, key, err := e.store().CreateAPIKey(context.Background(), number, "scoped", scopes)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (e *env) jwt(t testing.TB, number, sub string, roles ...string) string {
	t.Helper()
	tok, err := auth.MintHS256(e.jwtSecret, auth.OperatorClaims{Subject: sub, Enterprise: number, Roles: roles}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// pbx is a fake Asterisk with a real agent connected over the tunnel.
type pbx struct {
	ID   string
	AMI  *amitest.Server
	stop func()
}

func (e *env) addPBX(t testing.TB, number string, amiOpts ...amitest.Option) *pbx {
	t.Helper()
	e.mu.Lock()
	e.seq++
	name := fmt.Sprintf("pbx-%s-%d", number, e.seq)
	e.mu.Unlock()
	amiSrv := amitest.NewServer(t, amiOpts...)
	ag, token, err := e.store().CreateAgent(context.Background(), number, name, "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Server:       "ws://" + strings.TrimPrefix(e.url(), "http://"),
		Token:        token,
		AMI:          ami.Config{Addr: amiSrv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		Context:      "inoffice",
		Hostname:     name,
		Version:      "test",
		ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 100 * time.Millisecond,
		Logger:       e.logger.With("pbx", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	p := &pbx{ID: ag.ID, AMI: amiSrv}
	p.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent %s: %v", name, err)
			}
		})
	}
	t.Cleanup(p.stop)
	e.waitConnected(t, p)
	return p
}

// waitConnected polls until a ping through the tunnel reaches Asterisk.
func (e *env) waitConnected(t testing.TB, p *pbx) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var res protocol.PingResult
		last = e.current().srv.Registry().Call(ctx, p.ID, protocol.OpPing, nil, &res)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("PBX %s not connected within %v: %v", p.ID, waitTimeout, last)
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request with a bearer token (if any) and a JSON body (if
// not nil).
func (e *env) do(t testing.TB, method, path, token string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// msg is one WebSocket message: an event or a control message.
type msg struct {
	events.Event
	RequestedAfter int64  `json:"requested_after"`
	OldestSeq      int64  `json:"oldest_seq"`
	Message        string `json:"message"`
}

// wsClient reads an event stream on its own goroutine into msgs.
type wsClient struct {
	c      *websocket.Conn
	msgs   chan msg
	done   chan struct{}
	err    error // why reading stopped; set before done closes
	cancel context.CancelFunc
}

// dial opens GET /v1/events?query with token in the Authorization header
// ("" for none, e.g. with a ticket in the query).
func (e *env) dial(t testing.TB, token, query string) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	u := "ws://" + strings.TrimPrefix(e.url(), "http://") + "/v1/events"
	if query != "" {
		u += "?" + query
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("dial: %w (HTTP %d %s)", err, resp.StatusCode, b)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	w := &wsClient{c: c, msgs: make(chan msg, 1<<16), done: make(chan struct{}), cancel: rcancel}
	go func() {
		defer close(w.done)
		for {
			_, b, err := c.Read(rctx)
			if err != nil {
				w.err = err
				return
			}
			var m msg
			if err := json.Unmarshal(b, &m); err != nil {
				w.err = fmt.Errorf("decode %s: %w", b, err)
				return
			}
			w.msgs <- m
		}
	}()
	t.Cleanup(w.close)
	return w, nil
}

func (e *env) mustDial(t testing.TB, token, query string) *wsClient {
	t.Helper()
	w, err := e.dial(t, token, query)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *wsClient) close() {
	w.c.CloseNow()
	w.cancel()
	<-w.done
}

// next returns the next message, failing the test after waitTimeout.
func (w *wsClient) next(t testing.TB) msg {
	t.Helper()
	select {
	case m := <-w.msgs:
		return m
	case <-w.done:
		select {
		case m := <-w.msgs:
			return m
		default:
		}
		t.Fatalf("stream ended: %v", w.err)
	case <-time.After(waitTimeout):
		t.Fatalf("no message within %v", waitTimeout)
	}
	return msg{}
}

// until collects messages until one satisfies stop (included).
func (w *wsClient) until(t testing.TB, stop func(msg) bool) []msg {
	t.Helper()
	var out []msg
	for {
		m := w.next(t)
		out = append(out, m)
		if stop(m) {
			return out
		}
	}
}

// closeStatus waits for the stream to end and returns the close error.
func (w *wsClient) closed(t testing.TB) error {
	t.Helper()
	select {
	case <-w.done:
		return w.err
	case <-time.After(waitTimeout):
		t.Fatalf("stream still open after %v", waitTimeout)
	}
	return nil
}

// eventually polls cond until it holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(pollEvery)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// metric reads one sample of the running control plane's /metrics (0 when
// absent: counters with labels appear at their first increment).
func (e *env) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get(e.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}
