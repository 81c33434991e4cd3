package realpbx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

var (
	benchCalls  = flag.Int("realpbx.calls", 300, "sequential originates per path in BenchmarkOriginateLatency")
	benchRounds = flag.Int("realpbx.rounds", 1, "rounds of the four paths in one BenchmarkOriginateLatency run (use with -benchtime 1x)")
	benchPerf   = flag.String("realpbx.perf", "", "record `FILE` with perf (CPU samples of switchboard serve and the agent) during the product path, and write its report to FILE.txt")
)

// BenchmarkOriginateLatency puts four ways of placing one call side by side
// against the same real Asterisk, in one run, each a number of sequential
// originates (-realpbx.calls, 300) whose calls are left up:
//
//	direct   a raw TCP AMI session (Events: on): write a minimal async
//	         Originate, read until its Response
//	client   our AMI client (protocol/ami, Events: on): Client.Originate
//	         with the agent's Originate (ChannelId, Timeout…)
//	bare     a raw TCP AMI session writing exactly the bytes the client
//	         writes for that Originate: the client's own cost is client-bare
//	product  POST /v1/calls over one keep-alive HTTP connection to the real
//	         `switchboard serve` (rate limits lifted), through the tunnel to
//	         the real agent, to Asterisk, and back
//
// Latency is from the write (or the HTTP request) to Asterisk's "Originate
// successfully queued" (or the 201). The agent stays logged in throughout,
// as in production, so Asterisk fans every event out to it on every path.
//
// -realpbx.rounds N runs N rounds of the four paths on one setup (with
// -benchtime 1x: any other benchtime sets everything up again per b.N); the
// percentiles are over every round, and each round's p50 is logged to show
// the spread:
//
//	SWITCHBOARD_ASTERISK_LAB=../shared/asterisk/asterisk-lab \
//	  go test -run '^$' -bench OriginateLatency -benchtime 1x ./internal/realpbx/ -realpbx.rounds 3 [-realpbx.perf /tmp/serve.perf]
func BenchmarkOriginateLatency(b *testing.B) {
	l := newLab(b, "--log-level", "info",
		"--rate-per-credential", "1000000", "--burst-per-credential", "1000000",
		"--rate-per-enterprise", "1000000", "--burst-per-enterprise", "1000000",
		"--max-concurrent-originates", "1000")
	l.logLevel = "info"
	l.agentArgs = []string{"--max-concurrent-originates", "100000"}
	june := l.newTenant("0367", "june")
	l.startAgent(june, asterisktest.User)
	b.ResetTimer()
	runs := map[string][]pathRun{}
	var order []string
	for round := range b.N * *benchRounds {
		for _, p := range []benchPath{l.directPath(), l.clientPath(), l.barePath(), l.productPath(june)} {
			p.perf = p.perf && round == 0
			if round == 0 {
				order = append(order, p.name)
			}
			runs[p.name] = append(runs[p.name], l.runPath(b, june, p))
		}
	}
	for _, name := range order {
		report(b, name, runs[name])
	}
}

// pathRun is one round of one path.
type pathRun struct {
	lat  []time.Duration // sorted
	wall time.Duration
	cpu  cpuUse
}

func pct(lat []time.Duration, q int) time.Duration { return lat[(len(lat)*q+99)/100-1] }

// report logs a path's percentiles over every round (and each round's
// p50, to show the spread on a shared machine) and reports them as metrics.
func report(b *testing.B, name string, runs []pathRun) {
	var all []time.Duration
	var rounds []string
	var cpu cpuUse
	var wall time.Duration
	for _, r := range runs {
		all = append(all, r.lat...)
		rounds = append(rounds, pct(r.lat, 50).Round(time.Microsecond).String())
		cpu = cpu.plus(r.cpu)
		wall += r.wall
	}
	slices.Sort(all)
	n := len(all)
	b.Logf("%-8s n=%d  p50 %8s  p90 %8s  p99 %8s  max %8s  (p50 per round: %s) | %.0f calls/s; CPU per call (setup and events included): serve %s, agent %s, asterisk %s, this process %s",
		name, n, pct(all, 50).Round(time.Microsecond), pct(all, 90).Round(time.Microsecond), pct(all, 99).Round(time.Microsecond),
		all[n-1].Round(time.Microsecond), strings.Join(rounds, " "), float64(n)/wall.Seconds(),
		cpu.per(n, cpu.serve), cpu.per(n, cpu.agent), cpu.per(n, cpu.asterisk), cpu.per(n, cpu.self))
	for _, q := range []int{50, 90, 99} {
		b.ReportMetric(float64(pct(all, q).Microseconds()), fmt.Sprintf("%s-p%d-µs", name, q))
	}
}

// benchPath is one way of placing calls: open, then call(i) once per
// originate, then close.
type benchPath struct {
	name  string
	open  func() error
	call  func(i int) (time.Duration, error)
	close func()
	// perf: this is the path a perf recording covers.
	perf bool
}

func (l *lab) runPath(b *testing.B, tn *tenant, p benchPath) pathRun {
	b.Helper()
	l.clean(tn)
	l.quiet(tn)
	if err := p.open(); err != nil {
		b.Fatalf("%s: %v", p.name, err)
	}
	defer p.close()
	const warmup = 5
	for i := range warmup {
		if _, err := p.call(-1 - i); err != nil {
			b.Fatalf("%s warm-up: %v", p.name, err)
		}
	}
	l.clean(tn)
	l.quiet(tn)
	cpu := l.cpuNow(tn)
	var stopPerf func()
	if p.perf && *benchPerf != "" {
		stopPerf = l.startPerf(b, tn)
	}
	start := time.Now()
	lat := make([]time.Duration, 0, *benchCalls)
	for i := range *benchCalls {
		d, err := p.call(i)
		if err != nil {
			b.Fatalf("%s call %d: %v", p.name, i, err)
		}
		lat = append(lat, d)
	}
	wall := time.Since(start)
	// CPU is counted until every call is up in Asterisk and in the agent's
	// table, so it covers each call's whole setup and its events.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live, err := l.pbx.WaitChannels(ctx, func(c []asterisktest.Channel) bool { return len(c) >= 4**benchCalls })
	if err != nil {
		b.Errorf("%s: %d channels live after %d calls, want every call left up (4 channels each): %v", p.name, len(live), *benchCalls, err)
	}
	l.listedCount(tn, 4**benchCalls)
	if stopPerf != nil {
		stopPerf()
	}
	slices.Sort(lat)
	return pathRun{lat: lat, wall: wall, cpu: l.cpuNow(tn).minus(cpu)}
}

// quiet waits until the control plane has stored no new event for half a
// second: the calls hung up before a path must not be stored (SQLite
// writes, webhooks) while it is measured.
func (l *lab) quiet(tn *tenant) {
	l.t.Helper()
	var after int64
	if evs := l.events(tn, 0); len(evs) > 0 {
		after = evs[len(evs)-1].Seq
	}
	still := 0
	deadline := time.Now().Add(time.Minute)
	for still < 5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if evs := l.events(tn, after); len(evs) > 0 {
			after, still = evs[len(evs)-1].Seq, 0
			continue
		}
		still++
	}
}

// listedCount waits until the agent's table (GET /v1/channels) holds n
// channels.
func (l *lab) listedCount(tn *tenant, n int) {
	l.t.Helper()
	waitFor(l.t, time.Minute, fmt.Sprintf("%d channels in the agent's table", n), func() (bool, string) {
		var v struct {
			Channels []json.RawMessage `json:"channels"`
		}
		code, body := l.do("GET", "/v1/channels", tn.key, nil)
		if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
			return false, string(body)
		}
		return len(v.Channels) >= n, strconv.Itoa(len(v.Channels))
	})
}

// benchTo is the number path p's call i dials: distinct per call, so each
// call is its own Local pair and none is refused as a duplicate.
func benchTo(path, i int) string {
	return fmt.Sprintf("+3752%d%06d", path, 500000+i)
}

// agentOriginate is the Originate the agent sends for 150 → to
// (agent/ops originateAction).
func agentOriginate(to, callID string) *ami.Message {
	return ami.NewAction("Originate", "Channel", "Local/150@inoffice", "Application", "Dial", "Data", "Local/"+to+"@inoffice",
		"Timeout", "30000", "Async", "true", "ChannelId", callID, "OtherChannelId", callID+"-2")
}

func (l *lab) directPath() benchPath {
	var r *rawAMI
	return benchPath{
		name: "direct",
		open: func() (err error) { r, err = dialRaw(l.pbx.AMIAddr()); return err },
		call: func(i int) (time.Duration, error) {
			id := "direct-" + strconv.Itoa(i)
			msg := "Action: Originate\r\nActionID: " + id + "\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/" +
				benchTo(1, i) + "@inoffice\r\nAsync: true\r\n\r\n"
			return r.roundTrip([]byte(msg), id)
		},
		close: func() { r.close() },
	}
}

func (l *lab) clientPath() benchPath {
	var c *ami.Client
	return benchPath{
		name: "client",
		open: func() (err error) {
			ctx, cancel := context.WithTimeout(context.Background(), waitShort)
			defer cancel()
			c, err = ami.Dial(ctx, ami.Config{Addr: l.pbx.AMIAddr(), Username: asterisktest.User, Secret: asterisktest.Secret, Events: "on"})
			return err
		},
		call: func(i int) (time.Duration, error) {
			m := agentOriginate(benchTo(2, i), ops.NewCallID())
			ctx, cancel := context.WithTimeout(context.Background(), waitShort)
			defer cancel()
			start := time.Now()
			_, err := c.Originate(ctx, m)
			return time.Since(start), err
		},
		close: func() { c.Close() },
	}
}

func (l *lab) barePath() benchPath {
	var r *rawAMI
	return benchPath{
		name: "bare",
		open: func() (err error) { r, err = dialRaw(l.pbx.AMIAddr()); return err },
		call: func(i int) (time.Duration, error) {
			// The client's bytes: the message, then its ActionID last
			// (protocol/ami appendAction), an id of the client's shape.
			id := "sb-0123456789ab-" + strconv.Itoa(i+1000)
			wire, err := ami.AppendWire(nil, agentOriginate(benchTo(3, i), ops.NewCallID()))
			if err != nil {
				return 0, err
			}
			wire = append(wire[:len(wire)-2], "ActionID: "+id+"\r\n\r\n"...)
			return r.roundTrip(wire, id)
		},
		close: func() { r.close() },
	}
}

func (l *lab) productPath(tn *tenant) benchPath {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	c := &http.Client{Transport: tr, Timeout: waitShort}
	var conns, reused int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		conns++
		if i.Reused {
			reused++
		}
	}}
	return benchPath{
		name: "product",
		perf: true,
		open: func() error { return nil },
		call: func(i int) (time.Duration, error) {
			body := `{"from":"150","to":"` + benchTo(4, i) + `"}`
			ctx := httptrace.WithClientTrace(context.Background(), trace)
			req, err := http.NewRequestWithContext(ctx, "POST", l.base+"/v1/calls", strings.NewReader(body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+tn.key)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			var res struct {
				CallID string `json:"call_id"`
			}
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			d := time.Since(start)
			if err == nil && (resp.StatusCode != http.StatusCreated || res.CallID == "") {
				err = fmt.Errorf("POST /v1/calls: %s", resp.Status)
			}
			return d, err
		},
		close: func() {
			tr.CloseIdleConnections()
			if conns-reused != 1 {
				l.t.Errorf("product path used %d connections (%d of %d requests reused one), want one keep-alive connection", conns-reused, reused, conns)
			}
		},
	}
}

// rawAMI is a logged-in AMI session on a bare TCP socket.
type rawAMI struct {
	c   net.Conn
	br  *bufio.Reader
	msg []byte
}

func dialRaw(addr string) (*rawAMI, error) {
	c, err := net.DialTimeout("tcp", addr, waitShort)
	if err != nil {
		return nil, err
	}
	r := &rawAMI{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	if _, err := r.br.ReadString('\n'); err != nil { // banner
		c.Close()
		return nil, err
	}
	login := "Action: Login\r\nActionID: login\r\nUsername: " + asterisktest.User + "\r\nSecret: " + asterisktest.Secret + "\r\nEvents: on\r\n\r\n"
	if _, err := r.roundTrip([]byte(login), "login"); err != nil {
		c.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return r, nil
}

func (r *rawAMI) close() { r.c.Close() }

// roundTrip writes msg and reads, skipping events, until the Response
// whose ActionID is id.
func (r *rawAMI) roundTrip(msg []byte, id string) (time.Duration, error) {
	_ = r.c.SetDeadline(time.Now().Add(waitShort))
	start := time.Now()
	if _, err := r.c.Write(msg); err != nil {
		return 0, err
	}
	want := []byte("\r\nActionID: " + id + "\r\n")
	for {
		m, err := r.read()
		if err != nil {
			return 0, err
		}
		if bytes.HasPrefix(m, []byte("Response: ")) && bytes.Contains(m, want) {
			d := time.Since(start)
			if !bytes.HasPrefix(m, []byte("Response: Success")) {
				return d, fmt.Errorf("%s", m)
			}
			return d, nil
		}
	}
}

// read returns the next message, through its blank line (reused buffer).
func (r *rawAMI) read() ([]byte, error) {
	r.msg = r.msg[:0]
	for {
		line, err := r.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(line) == 2 && line[0] == '\r' {
			return r.msg, nil
		}
		r.msg = append(r.msg, line...)
	}
}

// cpuUse is CPU time used so far by each process of the product.
type cpuUse struct{ serve, agent, asterisk, self time.Duration }

func (l *lab) cpuNow(tn *tenant) cpuUse {
	pid, _ := os.ReadFile(filepath.Join(l.pbx.Dir(), "run", "asterisk.pid"))
	ast, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpuUse{serve: procCPU(l.serve.cmd.Process.Pid), agent: procCPU(tn.agent.cmd.Process.Pid), asterisk: procCPU(ast), self: self}
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	return cpuUse{u.serve - v.serve, u.agent - v.agent, u.asterisk - v.asterisk, u.self - v.self}
}

func (u cpuUse) plus(v cpuUse) cpuUse {
	return cpuUse{u.serve + v.serve, u.agent + v.agent, u.asterisk + v.asterisk, u.self + v.self}
}

func (u cpuUse) per(n int, d time.Duration) time.Duration {
	return (d / time.Duration(n)).Round(time.Microsecond)
}

// procCPU reads utime+stime of pid from /proc (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// startPerf records CPU samples of serve and the agent until the returned
// func is called, then writes perf's report beside the recording.
func (l *lab) startPerf(b *testing.B, tn *tenant) func() {
	b.Helper()
	out := *benchPerf
	pids := strconv.Itoa(l.serve.cmd.Process.Pid) + "," + strconv.Itoa(tn.agent.cmd.Process.Pid)
	cmd := exec.Command("perf", "record", "-F", "4999", "-g", "-p", pids, "-o", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Logf("perf record: %v: %s", err, stderr.String())
		}
		rep, err := exec.Command("perf", "report", "-i", out, "--stdio", "--no-children", "--sort", "comm,sym",
			"--percent-limit", "0.7", "-g", "none").CombinedOutput()
		if err != nil {
			b.Logf("perf report: %v", err)
		}
		if err := os.WriteFile(out+".txt", rep, 0o644); err != nil {
			b.Logf("perf report: %v", err)
		}
		b.Logf("perf recording of serve (pid %d) and the agent during the product path: %s, report %s.txt", l.serve.cmd.Process.Pid, out, out)
	}
}
