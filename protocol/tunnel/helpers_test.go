package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

const goodToken = "agent-token-good"

// testServer is a control plane reduced to the tunnel endpoint: it checks
// the bearer token (401 otherwise), Accepts, and hands each session to the
// test. Sessions live until the test ends or the peer goes.
type testServer struct {
	*httptest.Server
	sessions   chan *Session
	acceptErrs chan error
}

type serverOpts struct {
	cfg     AcceptConfig
	tls     *tls.Config // nil: plain ws://
	onStart func(*testServer)
}

func startServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{
		sessions:   make(chan *Session, 2048),
		acceptErrs: make(chan error, 16),
	}
	var handlers sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		if r.URL.Path != protocol.ConnectPath {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+goodToken {
			http.Error(w, "invalid agent token", http.StatusUnauthorized)
			return
		}
		sess, err := Accept(r.Context(), w, r, o.cfg)
		var ve *VersionError
		if errors.As(err, &ve) {
			RefuseVersion(w, err) // what the control plane's api writes
		}
		if err != nil {
			ts.acceptErrs <- err
			return
		}
		ts.sessions <- sess
		select {
		case <-sess.Done():
		case <-ctx.Done():
		}
		_ = sess.Close()
	})
	if o.tls != nil {
		ts.Server = httptest.NewUnstartedServer(h)
		ts.Server.TLS = o.tls
		// The untrusted-CA test makes the server log handshake failures.
		ts.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
		ts.Server.StartTLS()
	} else {
		ts.Server = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		cancel()
		ts.Server.Close()
		handlers.Wait()
	})
	return ts
}

func (ts *testServer) wsURL() string {
	u := strings.Replace(ts.URL, "http", "ws", 1)
	return u + protocol.ConnectPath
}

func (ts *testServer) nextSession(t testing.TB) *Session {
	t.Helper()
	select {
	case s := <-ts.sessions:
		return s
	case err := <-ts.acceptErrs:
		t.Fatalf("server Accept: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no session accepted within 5s")
	}
	return nil
}

// dialPair dials ts and returns the agent's and the control plane's ends.
func dialPair(t testing.TB, ts *testServer, cfg DialConfig) (agent, control *Session) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = ts.wsURL()
	}
	if cfg.Token == "" {
		cfg.Token = goodToken
	}
	ctx, cancel := context.WithCancel(context.Background())
	agent, err := Dial(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = agent.Close()
	})
	return agent, ts.nextSession(t)
}

func waitDone(t testing.TB, s *Session, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-s.Done():
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("session not Done within %v", within)
	}
	return 0
}

// testPKI is a CA and a server certificate for 127.0.0.1, made per test.
type testPKI struct {
	pool      *x509.CertPool
	caPEM     []byte
	serverTLS *tls.Config
}

func newPKI(t testing.TB) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchboard test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "control plane"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testPKI{
		pool:  pool,
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		serverTLS: &tls.Config{Certificates: []tls.Certificate{{
			Certificate: [][]byte{srvDER},
			PrivateKey:  srvKey,
		}}},
	}
}

// blackHole is a TCP proxy between agent and control plane that can start
// dropping everything in both directions without closing either side: the
// peer has vanished, as when a NAT entry expires or a cable is pulled.
type blackHole struct {
	ln      net.Listener
	target  string
	dropped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newBlackHole(t testing.TB, target string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bh := &blackHole{ln: ln, target: target}
	bh.wg.Go(bh.serve)
	t.Cleanup(func() {
		_ = ln.Close()
		bh.mu.Lock()
		for _, c := range bh.conns {
			_ = c.Close()
		}
		bh.mu.Unlock()
		bh.wg.Wait()
	})
	return bh
}

func (bh *blackHole) addr() string { return bh.ln.Addr().String() }

func (bh *blackHole) serve() {
	for {
		in, err := bh.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", bh.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		bh.mu.Lock()
		bh.conns = append(bh.conns, in, out)
		bh.mu.Unlock()
		bh.wg.Go(func() { bh.pipe(out, in) })
		bh.wg.Go(func() { bh.pipe(in, out) })
	}
}

func (bh *blackHole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !bh.dropped.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
