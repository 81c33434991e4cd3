package tunnel

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/protocol"
)

type echoMsg struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

// echoFrames answers every accepted stream by echoing frames until EOF.
func echoFrames(ctx context.Context, s *Session) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, _, err := s.Accept(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			for {
				var m echoMsg
				if err := protocol.ReadFrame(c, &m, 0); err != nil {
					return
				}
				if err := protocol.WriteFrame(c, m); err != nil {
					return
				}
			}
		})
	}
}

func serveEcho(t testing.TB, s *Session) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); echoFrames(ctx, s) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestLargePayloadBothWays(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opener func(agent, control *Session) (*Session, *Session)
	}{
		{"agent opens", func(a, c *Session) (*Session, *Session) { return a, c }},
		{"control plane opens", func(a, c *Session) (*Session, *Session) { return c, a }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			agent, control := dialPair(t, ts, DialConfig{})
			opener, acceptor := tc.opener(agent, control)

			const size = 1 << 20
			up := make([]byte, size)
			_, _ = rand.Read(up)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			// The acceptor reads the whole MiB, then answers with its
			// reverse, so each direction carries 1 MiB on one stream.
			errc := make(chan error, 1)
			go func() {
				c, kind, err := acceptor.Accept(ctx)
				if err != nil {
					errc <- err
					return
				}
				defer c.Close()
				if kind != protocol.StreamEvents {
					errc <- fmt.Errorf("kind = %v", kind)
					return
				}
				got := make([]byte, size)
				if _, err := io.ReadFull(c, got); err != nil {
					errc <- err
					return
				}
				for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
					got[i], got[j] = got[j], got[i]
				}
				_, err = c.Write(got)
				errc <- err
			}()

			c, err := opener.Open(ctx, protocol.StreamEvents)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(up); err != nil {
				t.Fatal(err)
			}
			down := make([]byte, size)
			if _, err := io.ReadFull(c, down); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			for i := range up {
				if down[size-1-i] != up[i] {
					t.Fatalf("byte %d differs", i)
				}
			}
		})
	}
}

func TestThousandConcurrentStreams(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	serveEcho(t, control)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, err := agent.Open(ctx, protocol.StreamRequest)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			want := echoMsg{N: i, Text: strings.Repeat("x", i%200)}
			if err := protocol.WriteFrame(c, want); err != nil {
				errs <- err
				return
			}
			var got echoMsg
			if err := protocol.ReadFrame(c, &got, 0); err != nil {
				errs <- err
				return
			}
			if got != want {
				errs <- fmt.Errorf("stream %d: got %+v", i, got)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestVanishedPeerDetected(t *testing.T) {
	const keepAlive = 100 * time.Millisecond
	ts := startServer(t, serverOpts{cfg: AcceptConfig{KeepAliveInterval: keepAlive, ConnectionWriteTimeout: keepAlive}})
	bh := newBlackHole(t, strings.TrimPrefix(ts.URL, "http://"))
	agent, control := dialPair(t, ts, DialConfig{
		URL:                    "ws://" + bh.addr() + protocol.ConnectPath,
		KeepAliveInterval:      keepAlive,
		ConnectionWriteTimeout: keepAlive,
	})
	// Healthy for several keepalive rounds first.
	select {
	case <-agent.Done():
		t.Fatal("session died while the link was healthy")
	case <-time.After(4 * keepAlive):
	}

	bh.dropped.Store(true)
	var wg sync.WaitGroup
	for name, s := range map[string]*Session{"agent": agent, "control plane": control} {
		wg.Go(func() {
			// Detection takes one keepalive interval plus the ping's
			// answer timeout (2 × keepAlive here); 20× leaves room
			// for a loaded -race CI runner.
			took := waitDone(t, s, 20*keepAlive)
			t.Logf("%s noticed the vanished peer after %v (keepalive %v)", name, took.Round(time.Millisecond), keepAlive)
		})
	}
	wg.Wait()
	if _, err := agent.Open(context.Background(), protocol.StreamRequest); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Open on dead session: %v, want ErrSessionClosed", err)
	}
}

func TestCloseEndsPeerPromptly(t *testing.T) {
	tests := []struct {
		name  string
		close func(agent, control *Session, cancelAgent context.CancelFunc)
		peer  func(agent, control *Session) *Session
	}{
		{"agent Close", func(a, _ *Session, _ context.CancelFunc) { _ = a.Close() }, func(_, c *Session) *Session { return c }},
		{"control plane Close", func(_, c *Session, _ context.CancelFunc) { _ = c.Close() }, func(a, _ *Session) *Session { return a }},
		{"agent ctx cancelled", func(_, _ *Session, cancel context.CancelFunc) { cancel() }, func(_, c *Session) *Session { return c }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, serverOpts{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			agent, err := Dial(ctx, DialConfig{URL: ts.wsURL(), Token: goodToken})
			if err != nil {
				t.Fatal(err)
			}
			defer agent.Close()
			control := ts.nextSession(t)
			tc.close(agent, control, cancel)
			waitDone(t, tc.peer(agent, control), 3*time.Second)
			// The closing side is Done as well.
			waitDone(t, agent, 3*time.Second)
		})
	}
}

func TestUnknownKindIsSkipped(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad, err := agent.Open(ctx, protocol.StreamKind(200))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	good, err := agent.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	_, kind, err := control.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kind != protocol.StreamControl {
		t.Fatalf("Accept returned kind %v, want the control stream after skipping kind 200", kind)
	}
	// The skipped stream was closed by the acceptor.
	_ = bad.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on skipped stream: %v, want EOF", err)
	}
}

func TestAcceptHonoursContext(t *testing.T) {
	ts := startServer(t, serverOpts{})
	_, control := dialPair(t, ts, DialConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := control.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept: %v, want DeadlineExceeded", err)
	}
	select {
	case <-control.Done():
		t.Fatal("Accept's ctx must not end the session")
	default:
	}
}

// TestOpenHonoursContext: while AcceptBacklog streams wait for the
// peer's acknowledgement (it accepts none), Open waits, and gives up when
// its context ends, without ending the session.
func TestOpenHonoursContext(t *testing.T) {
	const backlog = 2
	ts := startServer(t, serverOpts{cfg: AcceptConfig{AcceptBacklog: backlog}})
	agent, control := dialPair(t, ts, DialConfig{AcceptBacklog: backlog})
	_ = agent // accepts nothing
	ctx := context.Background()
	for i := range backlog {
		if _, err := control.Open(ctx, protocol.StreamRequest); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := control.Open(short, protocol.StreamRequest); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open past the backlog: %v, want DeadlineExceeded", err)
	}
	select {
	case <-control.Done():
		t.Fatal("Open's ctx must not end the session")
	default:
	}
}

func TestHandshakeRefused(t *testing.T) {
	ts := startServer(t, serverOpts{})
	tests := []struct {
		name    string
		cfg     DialConfig
		status  int
		message string
		is      error
	}{
		{
			name:    "bad token",
			cfg:     DialConfig{Token: "nope"},
			status:  http.StatusUnauthorized,
			message: "invalid agent token",
			is:      ErrUnauthorized,
		},
		{
			name:    "wrong path",
			cfg:     DialConfig{URL: strings.Replace(ts.URL, "http", "ws", 1) + "/nope"},
			status:  http.StatusNotFound,
			message: "404 page not found",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.URL == "" {
				cfg.URL = ts.wsURL()
			}
			if cfg.Token == "" {
				cfg.Token = goodToken
			}
			_, err := Dial(context.Background(), cfg)
			var he *HandshakeError
			if !errors.As(err, &he) {
				t.Fatalf("Dial: %v, want *HandshakeError", err)
			}
			if he.StatusCode != tc.status || he.Message != tc.message {
				t.Fatalf("HandshakeError = %d %q, want %d %q", he.StatusCode, he.Message, tc.status, tc.message)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if tc.is == nil && (errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrProtocolVersion)) {
				t.Fatalf("%v matches a sentinel it should not", err)
			}
			if strings.Contains(err.Error(), cfg.Token) {
				t.Fatal("error text contains the token")
			}
		})
	}
}

// A request offering a version this control plane does not speak is
// refused by Accept with a *VersionError, answered (RefuseVersion: what
// the control plane's api writes from RefusalHeader) with 400, the reason
// as body and our newest version in the header, which is what lets a
// newer agent fall back.
func TestAcceptRefusesUnsupportedVersion(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, offer := range []string{fmt.Sprint(protocol.Version + 1), fmt.Sprint(protocol.MinVersion - 1), ""} {
		t.Run("offer "+offer, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+protocol.ConnectPath, nil)
			req.Header.Set("Authorization", "Bearer "+goodToken)
			if offer != "" {
				req.Header.Set(protocol.VersionHeader, offer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(protocol.VersionHeader) != fmt.Sprint(protocol.Version) {
				t.Fatalf("answer %d with %s %q, want 400 with %d", resp.StatusCode, protocol.VersionHeader,
					resp.Header.Get(protocol.VersionHeader), protocol.Version)
			}
			want := fmt.Sprintf("this control plane speaks protocols %d to %d", protocol.MinVersion, protocol.Version)
			if !strings.Contains(string(body), want) {
				t.Fatalf("body %q does not say %q", body, want)
			}
			select {
			case err := <-ts.acceptErrs:
				var ve *VersionError
				if !errors.As(err, &ve) || !errors.Is(err, ErrProtocolVersion) || ve.Got != offer {
					t.Fatalf("server Accept error %v, want *VersionError for %q", err, offer)
				}
				if strings.TrimSpace(string(body)) != err.Error() {
					t.Fatalf("agent read %q, control plane logged %q", body, err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("server did not report the version error")
			}
		})
	}
}

// Every supported version gets a session, and both ends agree which.
func TestEverySupportedVersionConnects(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for v := protocol.MinVersion; v <= protocol.Version; v++ {
		t.Run(fmt.Sprint("protocol ", v), func(t *testing.T) {
			agent, control := dialPair(t, ts, DialConfig{Protocol: v})
			if agent.Protocol() != v || control.Protocol() != v {
				t.Fatalf("agent side %d, control side %d, want %d", agent.Protocol(), control.Protocol(), v)
			}
		})
	}
	// Offering a version this build does not speak is a config error, not
	// a request.
	_, err := Dial(context.Background(), DialConfig{URL: ts.wsURL(), Token: goodToken, Protocol: protocol.Version + 1})
	var he *HandshakeError
	if err == nil || errors.As(err, &he) || !strings.Contains(err.Error(), fmt.Sprintf("Protocol %d is outside", protocol.Version+1)) {
		t.Fatalf("Dial offering version %d: %v, want a config error", protocol.Version+1, err)
	}
}

// versionedControlPlane answers upgrade requests like a control plane
// speaking [min, max]: the current tunnel.Accept when the offer is in
// range, otherwise the 400 that every control plane since version 1 sends
// (RefuseVersion's shape, with max in the header). It records the offers.
type versionedControlPlane struct {
	*httptest.Server
	mu     sync.Mutex
	offers []string
}

func newVersionedControlPlane(t *testing.T, min, max int) *versionedControlPlane {
	cp := &versionedControlPlane{}
	ctx, cancel := context.WithCancel(context.Background())
	cp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offer := r.Header.Get(protocol.VersionHeader)
		cp.mu.Lock()
		cp.offers = append(cp.offers, offer)
		cp.mu.Unlock()
		if v, err := strconv.Atoi(offer); err != nil || v < min || v > max {
			w.Header().Set(protocol.VersionHeader, fmt.Sprint(max))
			http.Error(w, fmt.Sprintf("unsupported protocol version %s: this control plane speaks %d", offer, max), http.StatusBadRequest)
			return
		}
		sess, err := Accept(ctx, w, r, AcceptConfig{})
		if err != nil {
			return
		}
		<-sess.Done()
	}))
	t.Cleanup(func() { cancel(); cp.Close() })
	return cp
}

func (cp *versionedControlPlane) seen() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.offers)
}

// Against an older control plane the agent redials at once with the
// control plane's version when it speaks it; otherwise the refusal stands
// after one attempt.
func TestDialNegotiatesDown(t *testing.T) {
	tests := []struct {
		name     string
		min, max int // the control plane's range
		protocol int // agreed, 0 when refused
		offers   []string
	}{
		{"same version", protocol.MinVersion, protocol.Version, protocol.Version, []string{fmt.Sprint(protocol.Version)}},
		{"older control plane", protocol.MinVersion, protocol.MinVersion, protocol.MinVersion,
			[]string{fmt.Sprint(protocol.Version), fmt.Sprint(protocol.MinVersion)}},
		// (A control plane older than MinVersion answers like this one,
		// with a version below the agent's range; none exists while
		// MinVersion is 1.)
		{"control plane too new", protocol.Version + 1, protocol.Version + 2, 0, []string{fmt.Sprint(protocol.Version)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := newVersionedControlPlane(t, tc.min, tc.max)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := Dial(ctx, DialConfig{URL: "ws" + strings.TrimPrefix(cp.URL, "http") + protocol.ConnectPath, Token: goodToken})
			if tc.protocol != 0 {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if s.Protocol() != tc.protocol {
					t.Fatalf("agreed protocol %d, want %d", s.Protocol(), tc.protocol)
				}
			} else {
				var he *HandshakeError
				if !errors.As(err, &he) || !errors.Is(err, ErrProtocolVersion) || he.ServerProtocol != tc.max {
					t.Fatalf("Dial: %v, want a version refusal naming %d", err, tc.max)
				}
			}
			if got := cp.seen(); !slices.Equal(got, tc.offers) {
				t.Fatalf("offers %v, want %v", got, tc.offers)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   int
		text   string
	}{
		{"current", []string{fmt.Sprint(protocol.Version)}, protocol.Version, ""},
		{"oldest", []string{fmt.Sprint(protocol.MinVersion)}, protocol.MinVersion, ""},
		{"padded", []string{" " + fmt.Sprint(protocol.Version) + " "}, protocol.Version, ""},
		{"missing", nil, 0, "missing Switchboard-Protocol header"},
		{"older", []string{fmt.Sprint(protocol.MinVersion - 1)}, 0, fmt.Sprintf("unsupported protocol version %d", protocol.MinVersion-1)},
		{"newer", []string{fmt.Sprint(protocol.Version + 1)}, 0, fmt.Sprintf("unsupported protocol version %d", protocol.Version+1)},
		{"garbage", []string{"v1"}, 0, "unsupported protocol version v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, protocol.ConnectPath, nil)
			for _, v := range tc.header {
				r.Header.Add(protocol.VersionHeader, v)
			}
			got, err := CheckVersion(r)
			if got != tc.want || (tc.want != 0) != (err == nil) {
				t.Fatalf("CheckVersion = %d, %v; want %d", got, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not contain %q", err, tc.text)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := newPKI(t)
	ts := startServer(t, serverOpts{tls: pki.serverTLS})
	url := strings.Replace(ts.URL, "https", "wss", 1) + protocol.ConnectPath

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCAFile(caFile)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("trusted CA", func(t *testing.T) {
		agent, control := dialPair(t, ts, DialConfig{URL: url, RootCAs: pool})
		serveEcho(t, control)
		c, err := agent.Open(context.Background(), protocol.StreamRequest)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := protocol.WriteFrame(c, echoMsg{N: 1, Text: "over tls"}); err != nil {
			t.Fatal(err)
		}
		var got echoMsg
		if err := protocol.ReadFrame(c, &got, 0); err != nil || got.Text != "over tls" {
			t.Fatalf("echo over TLS: %+v, %v", got, err)
		}
	})
	t.Run("untrusted CA", func(t *testing.T) {
		other := newPKI(t)
		_, err := Dial(context.Background(), DialConfig{URL: url, Token: goodToken, RootCAs: other.pool})
		var unknown x509.UnknownAuthorityError
		var verify *tls.CertificateVerificationError
		if !errors.As(err, &unknown) && !errors.As(err, &verify) {
			t.Fatalf("Dial with the wrong CA: %v, want a certificate verification error", err)
		}
	})
	t.Run("system roots", func(t *testing.T) {
		_, err := Dial(context.Background(), DialConfig{URL: url, Token: goodToken})
		if err == nil {
			t.Fatal("a private CA must not verify against the system roots")
		}
	})
}

func TestLoadCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.pem"), notPEM} {
		if _, err := LoadCAFile(path); err == nil {
			t.Fatalf("LoadCAFile(%s) succeeded", path)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  DialConfig
		want string // substring of the error; "" means valid
	}{
		{"ok", DialConfig{URL: "wss://cp.example/agent/v1/connect", Token: "t"}, ""},
		{"no url", DialConfig{Token: "t"}, "URL is empty"},
		{"bad scheme", DialConfig{URL: "ftp://x/", Token: "t"}, `URL scheme "ftp" is not ws or wss`},
		{"no host", DialConfig{URL: "wss:///agent", Token: "t"}, "URL has no host"},
		{"no token", DialConfig{URL: "ws://x/"}, "Token is empty"},
		{"negative keepalive", DialConfig{URL: "ws://x/", Token: "t", KeepAliveInterval: -1}, "KeepAliveInterval -1ns is negative"},
		{"small read limit", DialConfig{URL: "ws://x/", Token: "t", MaxMessageBytes: 32 << 10}, "MaxMessageBytes 32768 is below 262156"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if err := (AcceptConfig{MaxMessageBytes: 100}).Validate(); err == nil {
		t.Fatal("AcceptConfig with a 100-byte read limit validated")
	}
}

func TestRemoteAddr(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	if got, want := agent.RemoteAddr().String(), strings.TrimPrefix(ts.URL, "http://"); got != want {
		t.Fatalf("agent RemoteAddr = %s, want %s", got, want)
	}
	if a, ok := control.RemoteAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		t.Fatalf("control RemoteAddr = %v", control.RemoteAddr())
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		ts := startServer(t, serverOpts{})
		ctx, cancel := context.WithCancel(context.Background())
		agent, err := Dial(ctx, DialConfig{URL: ts.wsURL(), Token: goodToken})
		if err != nil {
			t.Fatal(err)
		}
		control := ts.nextSession(t)
		serveCtx, stopServe := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); echoFrames(serveCtx, control) }()
		c, err := agent.Open(ctx, protocol.StreamRequest)
		if err != nil {
			t.Fatal(err)
		}
		_ = protocol.WriteFrame(c, echoMsg{N: 1})
		_ = protocol.ReadFrame(c, &echoMsg{}, 0)
		_ = c.Close()
		stopServe()
		<-done
		cancel()
		_ = agent.Close()
		waitDone(t, control, 3*time.Second)
		ts.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 { // +2: the http client's idle bookkeeping may linger briefly
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkRoundTrip is one request/response over one session: open a
// stream, write a frame, read the echoed frame, close.
func BenchmarkRoundTrip(b *testing.B) {
	ts := startServer(b, serverOpts{})
	agent, control := dialPair(b, ts, DialConfig{})
	serveEcho(b, control)
	ctx := context.Background()
	msg := echoMsg{N: 1, Text: `{"from":"150","to":"+375296254070","context":"inoffice"}`}
	b.ReportAllocs()
	for b.Loop() {
		c, err := agent.Open(ctx, protocol.StreamRequest)
		if err != nil {
			b.Fatal(err)
		}
		if err := protocol.WriteFrame(c, msg); err != nil {
			b.Fatal(err)
		}
		var got echoMsg
		if err := protocol.ReadFrame(c, &got, 0); err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}

// Closing a session does not wait for the peer: one that never reads
// (and so would never answer a close frame) must not hold Close, and a
// goroutine blocked in Accept returns.
func TestCloseDoesNotWaitForThePeer(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ctx := context.Background()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+goodToken)
	hdr.Set(protocol.VersionHeader, fmt.Sprint(protocol.Version))
	// A peer that upgrades and then never reads: it would never answer a
	// close frame.
	ws, _, err := websocket.Dial(ctx, ts.wsURL(), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	sess := ts.nextSession(t)
	readErr := make(chan error, 1)
	go func() {
		// A stream reader like the gateway's, blocked when the session
		// closes. The peer's stream is opened by hand: yamux SYN frame.
		_, _, err := sess.Accept(ctx)
		readErr <- err
	}()
	start := time.Now()
	if err := sess.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	// websocket's graceful close waits 5 s for the peer's answer.
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v: it waited for the peer", took)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("Accept after Close: %v, want ErrSessionClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
}
