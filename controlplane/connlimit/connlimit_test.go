package connlimit_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
)

const wait = 5 * time.Second

// shed records the reasons the limiter reports.
type shed struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *shed) ConnShed(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[reason]++
}

func (s *shed) get(reason string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[reason]
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// server is an http.Server on a limited listener, wired like the control
// plane's: /healthz and /tunnel are reserved; /tunnel hijacks and holds
// the connection open until the test ends.
type server struct {
	l    *connlimit.Limiter
	shed *shed
	clk  *clock
	addr string
}

func newServer(t *testing.T, cfg connlimit.Config, tune func(*http.Server)) *server {
	t.Helper()
	s := &server{shed: &shed{}, clk: &clock{t: time.Unix(1e9, 0)}}
	cfg.ReservedPaths = []string{"/healthz", "/tunnel"}
	cfg.Observer, cfg.Now = s.shed, s.clk.Now
	l, err := connlimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.l = l
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	held := make(chan struct{})
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := connlimit.Admit(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/tunnel" {
			nc, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			go func() { <-held; nc.Close() }()
			return
		}
		io.WriteString(w, "ok")
	})
	srv := &http.Server{Handler: mux, ConnState: l.ConnState, ConnContext: l.ConnContext, ReadHeaderTimeout: time.Minute}
	if tune != nil {
		tune(srv)
	}
	go srv.Serve(l.Listener(ln))
	t.Cleanup(func() { close(held); srv.Close() })
	return s
}

// dial opens a connection from the loopback address from. One the server
// refuses may be reset before connect returns: it is then a closed conn.
func (s *server) dial(t *testing.T, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return refusedConn{}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refusedConn is a connection reset while it was being made.
type refusedConn struct{ net.Conn }

func (refusedConn) Read([]byte) (int, error)         { return 0, syscall.ECONNRESET }
func (refusedConn) Write([]byte) (int, error)        { return 0, syscall.ECONNRESET }
func (refusedConn) SetDeadline(time.Time) error      { return nil }
func (refusedConn) SetReadDeadline(time.Time) error  { return nil }
func (refusedConn) SetWriteDeadline(time.Time) error { return nil }
func (refusedConn) Close() error                     { return nil }

// waitStats waits until the limiter counts want.
func (s *server) waitStats(t *testing.T, want connlimit.Stats) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.l.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", s.l.Stats(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// get sends one request on c and returns the status and whether the
// server said it closes the connection.
func get(t *testing.T, c net.Conn, path string) (int, bool) {
	t.Helper()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Close
}

// closedByServer reports whether the server closed c (reading, whatever
// it may still say, ends in EOF or a reset, not a timeout).
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	return closedWithin(c, wait)
}

func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func TestPerIP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exempt   []netip.Prefix
		third    bool // the third connection from one address is served
		perIPErr int
	}{
		{"bounded", nil, false, 1},
		{"exempt address", []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, connlimit.Config{MaxPerIP: 2, Exempt: tc.exempt}, nil)
			a, b := s.dial(t, "127.0.0.2"), s.dial(t, "127.0.0.2")
			s.waitStats(t, connlimit.Stats{General: 2})
			third := s.dial(t, "127.0.0.2")
			other := s.dial(t, "127.0.0.3") // another address is not affected
			if code, _ := get(t, other, "/x"); code != 200 {
				t.Fatalf("other address: %d", code)
			}
			if tc.third {
				if code, _ := get(t, third, "/x"); code != 200 {
					t.Fatalf("exempt address's third connection: %d", code)
				}
			} else if !closedByServer(t, third) {
				t.Fatal("third connection from one address was not refused")
			}
			if got := s.shed.get(connlimit.ShedPerIP); got != tc.perIPErr {
				t.Fatalf("per_ip shed %d, want %d", got, tc.perIPErr)
			}
			// Closing one frees its address's slot.
			a.Close()
			_ = b
			s.waitStats(t, connlimit.Stats{General: 2 + btoi(tc.third)})
			if code, _ := get(t, s.dial(t, "127.0.0.2"), "/x"); code != 200 {
				t.Fatalf("after a close: %d", code)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestReserve: general clients get MaxConns-Reserve connections; then a
// new one may only ask for a reserved path, once, and is closed after;
// past MaxConns one is refused.
func TestReserve(t *testing.T) {
	s := newServer(t, connlimit.Config{MaxConns: 4, Reserve: 2, EvictAfter: -1, ReserveTimeout: time.Minute}, nil)
	s.dial(t, "127.0.0.1")
	s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 2})

	busy := s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 2, Reserve: 1})
	if code, closing := get(t, busy, "/v1/calls"); code != http.StatusServiceUnavailable || !closing {
		t.Fatalf("general path on a reserve connection: %d (closing %v), want 503 and close", code, closing)
	}
	if !closedByServer(t, busy) {
		t.Fatal("reserve connection not closed after its refusal")
	}
	health := s.dial(t, "127.0.0.1")
	if code, closing := get(t, health, "/healthz"); code != 200 || !closing {
		t.Fatalf("health check on a reserve connection: %d (closing %v)", code, closing)
	}
	if !closedByServer(t, health) {
		t.Fatal("reserve connection kept after its one request")
	}
	s.waitStats(t, connlimit.Stats{General: 2})
	s.dial(t, "127.0.0.1")
	s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 2, Reserve: 2})
	if !closedByServer(t, s.dial(t, "127.0.0.1")) {
		t.Fatal("a connection past MaxConns was not refused")
	}
	if s.shed.get(connlimit.ShedFull) != 1 || s.shed.get(connlimit.ShedReservedPath) != 1 {
		t.Fatalf("shed %+v", s.shed.n)
	}
}

// TestReserveTimeout: a reserve connection that sends nothing is closed
// after ReserveTimeout, freeing its slot.
func TestReserveTimeout(t *testing.T) {
	s := newServer(t, connlimit.Config{MaxConns: 2, Reserve: 1, EvictAfter: -1, ReserveTimeout: 50 * time.Millisecond}, nil)
	s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 1})
	idle := s.dial(t, "127.0.0.1")
	if !closedByServer(t, idle) {
		t.Fatal("silent reserve connection kept")
	}
	s.waitStats(t, connlimit.Stats{General: 1})
	if s.shed.get(connlimit.ShedReserveTimeout) != 1 {
		t.Fatalf("shed %+v", s.shed.n)
	}
}

// TestTunnelsLeaveTheGeneralPool: a hijacked request to a reserved path
// (an agent tunnel) stops counting as general or per address, and takes
// its room from general clients, never from the reserve.
func TestTunnelsLeaveTheGeneralPool(t *testing.T) {
	s := newServer(t, connlimit.Config{MaxConns: 4, Reserve: 1, MaxPerIP: 1, EvictAfter: -1, ReserveTimeout: 50 * time.Millisecond}, nil)
	tun := s.dial(t, "127.0.0.2")
	io.WriteString(tun, "GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
	s.waitStats(t, connlimit.Stats{Tunnels: 1})
	// Its address may connect again; the tunnel outlives ReserveTimeout.
	if code, _ := get(t, s.dial(t, "127.0.0.2"), "/x"); code != 200 {
		t.Fatalf("address of a tunnel: %d", code)
	}
	s.waitStats(t, connlimit.Stats{General: 1, Tunnels: 1})
	// General room is 4-1-1 = 2: the next general client fits, the one
	// after goes to the reserve.
	s.dial(t, "127.0.0.3")
	s.waitStats(t, connlimit.Stats{General: 2, Tunnels: 1})
	s.dial(t, "127.0.0.4")
	s.waitStats(t, connlimit.Stats{General: 2, Reserve: 1, Tunnels: 1})
	if closedWithin(tun, 200*time.Millisecond) {
		t.Fatal("tunnel closed")
	}
}

// TestEviction: at the bound, a new connection evicts the one that has
// waited longest with no request in progress, once it waited EvictAfter.
func TestEviction(t *testing.T) {
	s := newServer(t, connlimit.Config{MaxConns: 3, Reserve: 1, EvictAfter: time.Second, ReserveTimeout: time.Minute}, nil)
	oldest := s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 1})
	s.clk.Advance(500 * time.Millisecond)
	second := s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 2})
	// Too young to evict: the newcomer goes to the reserve.
	young := s.dial(t, "127.0.0.1")
	s.waitStats(t, connlimit.Stats{General: 2, Reserve: 1})
	young.Close()
	s.waitStats(t, connlimit.Stats{General: 2})

	s.clk.Advance(600 * time.Millisecond)
	fresh := s.dial(t, "127.0.0.1")
	if code, _ := get(t, fresh, "/x"); code != 200 {
		t.Fatalf("newcomer: %d", code)
	}
	if !closedByServer(t, oldest) {
		t.Fatal("oldest waiting connection not evicted")
	}
	if code, _ := get(t, second, "/x"); code != 200 {
		t.Fatalf("younger connection: %d", code)
	}
	if s.shed.get(connlimit.ShedEvicted) != 1 {
		t.Fatalf("shed %+v", s.shed.n)
	}
}

// TestTimeoutsReported: the server's header and idle timeouts close
// connections silently; the limiter counts them.
func TestTimeoutsReported(t *testing.T) {
	s := newServer(t, connlimit.Config{}, func(srv *http.Server) {
		srv.ReadHeaderTimeout, srv.IdleTimeout = 100*time.Millisecond, 100*time.Millisecond
	})
	slow := s.dial(t, "127.0.0.1")
	io.WriteString(slow, "GET / HT")
	if !closedByServer(t, slow) {
		t.Fatal("slow headers kept")
	}
	idle := s.dial(t, "127.0.0.1")
	if code, _ := get(t, idle, "/x"); code != 200 {
		t.Fatal(code)
	}
	if !closedByServer(t, idle) {
		t.Fatal("idle connection kept")
	}
	deadline := time.Now().Add(wait)
	for s.shed.get(connlimit.ShedHeaderTimeout) != 1 || s.shed.get(connlimit.ShedIdleTimeout) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("shed %+v", s.shed.n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  connlimit.Config
		want string
	}{
		{connlimit.Config{MaxConns: 10, Reserve: 10}, "must be fewer"},
		{connlimit.Config{MaxPerIP: -1}, "negative"},
		{connlimit.Config{ReserveTimeout: -time.Second}, "negative"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (connlimit.Config{MaxConns: 10, Reserve: 2, MaxPerIP: 3}).Validate(); err != nil {
		t.Error(err)
	}
}
