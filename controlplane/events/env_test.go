package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// The helpers' own waits.
const (
	waitTimeout = 20 * time.Second
	pollEvery   = 5 * time.Millisecond
)

// env is the whole control plane (systemtest) as these tests use it: on a
// store and address that outlive a restart, with the API's rate limits
// lifted (the tests measure the stream, not the limiter).
type env struct {
	s *systemtest.Server
}

// cpInstance is the running control plane's parts these tests reach into.
type cpInstance struct {
	st  *store.Store
	srv *controlplane.Server
	svc *events.Service
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
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	lifted := ratelimit.Config{PerCredential: rate.Limit(1e6), CredentialBurst: 1e6, PerEnterprise: rate.Limit(1e6), EnterpriseBurst: 1e6}
	return &env{s: systemtest.New(t, systemtest.Options{
		Engine:               o.engine,
		Level:                level,
		StrictWebhookTargets: o.strictTargets,
		// Like the API's rate limits: BenchmarkPipeline offers one PBX
		// 5,000 events/s, ten times the default per-agent event rate.
		Config: controlplane.Config{Events: o.cfg, API: api.Config{RateLimit: lifted},
			Gateway: gateway.Config{Limits: gateway.Limits{EventRate: -1}}},
	})}
}

// restart stops the control plane and starts a new one on the same store
// and address.
func (e *env) restart(t testing.TB) { e.s.Restart(t) }

func (e *env) current() cpInstance {
	cp := e.s.CP()
	return cpInstance{st: cp.Store(), srv: cp, svc: cp.Events()}
}

func (e *env) store() *store.Store { return e.s.Store() }
func (e *env) url() string         { return e.s.URL }

// tenant is an enterprise with credentials.
type tenant struct {
	ent store.Enterprise
	key string // every scope
}

func (e *env) tenant(t testing.TB, number string) *tenant {
	t.Helper()
	ent := e.s.Enterprise(t, number, "enterprise "+number)
	return &tenant{ent: ent, key: e.s.APIKey(t, number)}
}

func (e *env) apiKey(t testing.TB, number string, scopes ...string) string {
	t.Helper()
	return e.s.APIKey(t, number, scopes...)
}

func (e *env) jwt(t testing.TB, number, sub string, roles ...string) string {
	t.Helper()
	return e.s.JWT(t, number, sub, roles...)
}

// pbx is a fake Asterisk with a real agent connected over the tunnel.
type pbx struct {
	ID   string
	AMI  *amitest.Server
	stop func()
	p    *systemtest.PBX
}

func (e *env) addPBX(t testing.TB, number string, amiOpts ...amitest.Option) *pbx {
	t.Helper()
	p := e.s.AddPBX(t, number, systemtest.PBXOptions{AMI: amiOpts})
	return &pbx{ID: p.ID, AMI: p.AMI, stop: p.Stop, p: p}
}

// waitConnected waits until the PBX is connected and answers a ping.
func (e *env) waitConnected(t testing.TB, p *pbx) { e.s.WaitReady(t, p.p) }

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
// not nil; a string is sent as it is).
func (e *env) do(t testing.TB, method, path, token string, body any) response {
	t.Helper()
	r := e.s.Do(t, method, path, token, body)
	return response{status: r.Status, header: r.Header, body: r.Body}
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
	eventuallyWithin(t, what, waitTimeout, cond)
}

// eventuallyWithin is eventually with its own bound, for the waits that a
// loaded CI machine (the whole suite under -race on 2 cores) stretches
// most: a bound on the test, not a latency figure.
func eventuallyWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(pollEvery)
	}
}

// metric reads one sample of the running control plane's /metrics.
func (e *env) metric(t testing.TB, series string) float64 { return e.s.Metric(t, series) }
