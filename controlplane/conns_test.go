package controlplane_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// trickle is one kind of abusive connection.
type trickle int

const (
	slowHeaders trickle = iota // a request line, then a header byte every tick
	slowBody                   // an unauthenticated POST /v1/calls, Content-Length 60000, a body byte every tick
	silent                     // connects and sends nothing
)

// tricklers hold abusive connections open from several loopback addresses
// until stop; a connection the server closes is not reopened.
type tricklers struct {
	wg       sync.WaitGroup
	stop     chan struct{}
	stopOnce sync.Once
	// Of the slow bodies: answered 401 promptly then closed, or refused
	// (never admitted, or closed) before any answer.
	answered, refused atomic.Int64
	dialErr           atomic.Int64
	// started is done once every trickler has dialled and written.
	started sync.WaitGroup
	wrong   atomic.Value // string: the first unexpected answer
}

// startTricklers opens n connections of kinds, in turn, from addrs
// loopback addresses counted from first (127.0.0.first, …).
func startTricklers(t *testing.T, addr string, n, first, addrs int, kinds ...trickle) *tricklers {
	t.Helper()
	tr := &tricklers{stop: make(chan struct{})}
	tr.started.Add(n)
	for i := range n {
		from := fmt.Sprintf("127.0.0.%d", first+i%addrs)
		tr.wg.Add(1)
		go tr.run(addr, from, kinds[i%len(kinds)])
	}
	t.Cleanup(tr.halt)
	return tr
}

// halt closes every trickler's connection and waits for them.
func (tr *tricklers) halt() {
	tr.stopOnce.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

func (tr *tricklers) run(addr, from string, kind trickle) {
	defer tr.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tr.started.Done()
		tr.dialErr.Add(1)
		if kind == slowBody {
			tr.refused.Add(1)
		}
		return // refused at once (a reset)
	}
	defer c.Close()
	switch kind {
	case slowHeaders:
		_, err = io.WriteString(c, "POST /v1/calls HTTP/1.1\r\nHost: x\r\n")
	case slowBody:
		_, err = io.WriteString(c, "POST /v1/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{")
		if err == nil {
			tr.started.Done()
			tr.readAnswer(c)
			return
		}
	}
	tr.started.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for err == nil {
		select {
		case <-tr.stop:
			return
		case <-tick.C:
		}
		if kind != silent {
			_, err = c.Write([]byte("x"))
		}
	}
}

// readAnswer: an unauthenticated body is answered 401 without waiting for
// it, and the connection closed, while the client still owes 59,999 bytes.
func (tr *tricklers) readAnswer(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		var ne net.Error
		if errorsAs(err, &ne) && ne.Timeout() {
			tr.wrong.CompareAndSwap(nil, "no answer within 3 s to an unauthenticated trickled body")
			return
		}
		tr.refused.Add(1) // evicted or refused before its headers were read
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		tr.wrong.CompareAndSwap(nil, fmt.Sprintf("trickled body answered %d (close %v), want 401 and close", resp.StatusCode, resp.Close))
		return
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		var ne net.Error
		if errorsAs(err, &ne) && ne.Timeout() {
			tr.wrong.CompareAndSwap(nil, "connection kept open after the 401")
			return
		}
	}
	tr.answered.Add(1)
}

// TestTricklersDoNotLockOutAgentsOrCalls: 1,000 trickling connections from
// eight addresses, against a control plane bounded to 400 connections,
// do not stop an agent from connecting, a call from being placed, nor a
// health check.
func TestTricklersDoNotLockOutAgentsOrCalls(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 3000 {
		t.Fatalf("this test needs 3,000 open files (client and server ends): RLIMIT_NOFILE %d, %v", rl.Cur, err)
	}
	const maxConns = 400
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{
		Conns: controlplane.ConnLimits{Max: maxConns, Reserve: 40, PerIP: 100, Exempt: []netip.Prefix{}, EvictAfter: 500 * time.Millisecond},
	}})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")

	addr := strings.TrimPrefix(s.URL, "http://")
	tr := startTricklers(t, addr, 1000, 2, 4, slowHeaders, silent)
	tr.started.Wait()
	// The server is at its bounds: per address (4 × 100 admitted of 250
	// each), which makes 400, all it takes.
	if metric(t, s, `switchboard_connections_shed_total{reason="per_ip"}`) == 0 {
		t.Fatalf("no connection refused per address (%d dials failed)", tr.dialErr.Load())
	}
	time.Sleep(600 * time.Millisecond) // the tricklers waited past EvictAfter

	p := s.AddPBX(t, "0367") // fails the test if the agent cannot connect
	if r := s.Do(t, "GET", "/healthz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz: %d %s", r.Status, r.Body)
	}
	r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "+375296254070", "pbx": p.ID})
	if r.Status != http.StatusCreated {
		t.Fatalf("call: %d %s", r.Status, r.Body)
	}
	// Unauthenticated trickled bodies, the server still full: each is
	// admitted (evicting a trickler), answered at once and closed.
	bodies := startTricklers(t, addr, 60, 6, 1, slowBody)
	bodies.wg.Wait() // each ends once answered
	if w := bodies.wrong.Load(); w != nil {
		t.Fatal(w)
	}
	if bodies.answered.Load() != 60 {
		t.Fatalf("of 60 trickled bodies %d were answered at once, %d refused", bodies.answered.Load(), bodies.refused.Load())
	}
	open := 0
	for _, class := range []string{"general", "reserve", "tunnel"} {
		open += int(metric(t, s, `switchboard_connections_open{class="`+class+`"}`))
	}
	if open > maxConns || metric(t, s, `switchboard_connections_open{class="tunnel"}`) != 1 {
		t.Fatalf("%d connections open (max %d), tunnels %v", open, maxConns, metric(t, s, `switchboard_connections_open{class="tunnel"}`))
	}
	for _, reason := range []string{"per_ip", "evicted", "unread_body"} {
		if metric(t, s, `switchboard_connections_shed_total{reason="`+reason+`"}`) == 0 {
			t.Errorf("no connection shed for %s", reason)
		}
	}
	t.Logf("shed: per_ip %v full %v evicted %v reserve_timeout %v reserved_path %v",
		metric(t, s, `switchboard_connections_shed_total{reason="per_ip"}`), metric(t, s, `switchboard_connections_shed_total{reason="full"}`),
		metric(t, s, `switchboard_connections_shed_total{reason="evicted"}`), metric(t, s, `switchboard_connections_shed_total{reason="reserve_timeout"}`),
		metric(t, s, `switchboard_connections_shed_total{reason="reserved_path"}`))
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// metric reads a sample of /metrics like systemtest's Metric, retrying
// while the server refuses the connection: under attack the scrape is a
// general client too (scrape --metrics-listen to keep it out of the
// main listener's limits).
func metric(t *testing.T, s *systemtest.Server, series string) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.DoErr("GET", "/metrics", "", nil)
		if err == nil && r.Status == http.StatusOK {
			for _, line := range strings.Split(string(r.Body), "\n") {
				if v, ok := strings.CutPrefix(line, series+" "); ok {
					var f float64
					if _, err := fmt.Sscan(v, &f); err != nil {
						t.Fatalf("metric %s: %v", series, err)
					}
					return f
				}
			}
			return 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %v %v", err, r.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReserveKeepsAgentsIn: with eviction off and general clients at their
// bound, an agent still connects and health checks still answer, through
// the reserve; an API request there is refused (503, retry) rather than
// taking the reserve.
func TestReserveKeepsAgentsIn(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{
		Conns: controlplane.ConnLimits{Max: 400, Reserve: 40, PerIP: 90, Exempt: []netip.Prefix{}, EvictAfter: -1},
	}})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")
	tr := startTricklers(t, strings.TrimPrefix(s.URL, "http://"), 1000, 2, 4, slowHeaders, silent)
	tr.started.Wait() // 4 × 90 = 360 general connections: all there are

	p := s.AddPBX(t, "0367")
	if r := s.Do(t, "GET", "/readyz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.Status, r.Body)
	}
	r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151", "pbx": p.ID})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("API request on a reserve connection: %d %s, want 503 with Retry-After", r.Status, r.Body)
	}
	tr.halt() // so that /metrics, a general client, gets in
	if got := metric(t, s, `switchboard_connections_open{class="tunnel"}`); got != 1 {
		t.Fatalf("tunnels %v, want 1", got)
	}
	if metric(t, s, `switchboard_connections_shed_total{reason="reserved_path"}`) == 0 || metric(t, s, `switchboard_connections_shed_total{reason="evicted"}`) != 0 {
		t.Fatal("reserved_path not counted, or a connection evicted with eviction off")
	}
}
