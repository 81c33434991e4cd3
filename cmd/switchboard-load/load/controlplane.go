package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Waits of the control plane process.
const (
	cpStartTimeout = 60 * time.Second
	cpStopTimeout  = 30 * time.Second
	pollEvery      = 50 * time.Millisecond
)

// cpLauncher starts the control plane as a child process, the same way
// every time, so a restart listens where the agents dial.
type cpLauncher struct {
	argv    []string
	profile string // directory of per-instance profiles, or ""
	dir     string
	base    string // http://127.0.0.1:port
	started int
	// name prefixes its log files: controlplane, replica-N.
	name string
}

// cpProcess is one running control plane.
type cpProcess struct {
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	// profile: the profiled copy's snapshot files are <profile>-*-K.*;
	// snaps is the last K asked for. Empty: not profiled.
	profile string
	snaps   atomic.Int32
}

func newCPLauncher(cfg Config, dir string, plan *fleetPlan) (*cpLauncher, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--db", plan.DSN, "--listen", addr, "--jwt-secret-file", plan.JWTFile}
	argv := append(append([]string{cfg.Switchboard, "serve"}, args...), cfg.ControlPlaneFlags...)
	if cfg.Profile != "" {
		if len(cfg.ControlPlaneFlags) > 0 {
			return nil, errors.New("--controlplane-flag does not go with --profile (the profiled control plane has serve's wiring, not its flags)")
		}
		argv = append([]string{cfg.Self, "controlplane"}, args...)
	}
	argv = append(argv, "--log-level", "warn")
	return &cpLauncher{argv: argv, profile: cfg.Profile, dir: dir, base: "http://" + addr, name: "controlplane"}, nil
}

// freeLoopbackAddr finds a port nobody listens on. Another process could
// take it before the control plane does; on a load machine nobody does.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the control plane and waits until it answers /healthz.
func (l *cpLauncher) start(ctx context.Context) (*cpProcess, error) {
	l.started++
	logPath := filepath.Join(l.dir, fmt.Sprintf("%s-%d.log", l.name, l.started))
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("control plane log: %w", err)
	}
	argv := l.argv
	if l.profile != "" {
		argv = append(argv[:len(argv):len(argv)], "--profile-dir", l.profile, "--profile-prefix", fmt.Sprintf("cp%d", l.started))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = childEnv()
	// A coordinator that dies must not leave a control plane behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start control plane %s: %w", argv[0], err)
	}
	p := &cpProcess{cmd: cmd, logFile: lf, done: make(chan struct{})}
	if l.profile != "" {
		p.profile = filepath.Join(l.profile, fmt.Sprintf("cp%d", l.started))
	}
	go func() { p.waitErr = cmd.Wait(); lf.Close(); close(p.done) }()

	sctx, cancel := context.WithTimeout(ctx, cpStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if resp, err := client.Get(l.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("control plane exited at start (%v); see %s", p.waitErr, logPath)
		case <-sctx.Done():
			p.stop(syscall.SIGKILL)
			return nil, fmt.Errorf("control plane not answering %s/healthz within %v; see %s", l.base, cpStartTimeout, logPath)
		case <-time.After(pollEvery):
		}
	}
}

// childEnv is our environment without SWITCHBOARD_* settings, so what is
// measured is the command line shown in the report.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *cpProcess) pid() int { return p.cmd.Process.Pid }

// stop signals the process and waits for it to exit, killing it if it
// does not within cpStopTimeout.
func (p *cpProcess) stop(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(cpStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("control plane ignored %v for %v: killed", sig, cpStopTimeout)
	}
}

// metrics reads the named series (no labels) from /metrics.
func scrapeMetrics(ctx context.Context, client *http.Client, base string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if v, ok := strings.CutPrefix(line, n+" "); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					out[n] = f
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("scrape metrics: no %s", n)
		}
	}
	return out, nil
}

// Metric names the run reads.
const (
	metricConnected = "switchboard_agents_connected"
	metricEventsIn  = "switchboard_events_received_total"
	metricConnects  = "switchboard_tunnel_connects_total"
)

// errNotAll is returned by waitConnected when the deadline passed first.
var errNotAll = errors.New("not every agent connected in time")

// connectProgress is when a share of the agents had connected, counted
// from a start instant.
type connectProgress struct {
	Half, P90, P99, All time.Duration // zero when not reached
	AtGoal              int           // connected when the goal time passed
	Final               int
}

// waitConnected polls the control plane until want agents are connected
// or timeout passes; goal is the instant whose count is reported.
func waitConnected(ctx context.Context, client *http.Client, base string, want int, start time.Time, goal, timeout time.Duration) (connectProgress, error) {
	var pr connectProgress
	pr.AtGoal = -1
	deadline := start.Add(timeout)
	for {
		m, err := scrapeMetrics(ctx, client, base, metricConnected)
		now := time.Now()
		if err == nil {
			n := int(m[metricConnected])
			pr.Final = n
			el := now.Sub(start)
			mark := func(d *time.Duration, share float64) {
				if *d == 0 && float64(n) >= share*float64(want) {
					*d = el
				}
			}
			mark(&pr.Half, 0.5)
			mark(&pr.P90, 0.9)
			mark(&pr.P99, 0.99)
			if pr.AtGoal < 0 && el >= goal {
				pr.AtGoal = n
			}
			if n >= want {
				pr.All = el
				if pr.AtGoal < 0 {
					pr.AtGoal = n
				}
				return pr, nil
			}
		}
		if now.After(deadline) {
			if pr.AtGoal < 0 {
				pr.AtGoal = pr.Final
			}
			return pr, fmt.Errorf("%w: %d of %d after %v", errNotAll, pr.Final, want, timeout)
		}
		select {
		case <-ctx.Done():
			return pr, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// signal sends sig to the process (profile toggles); a process that is
// gone is not an error here.
func (p *cpProcess) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// snapshotWait is how long snapshot waits for the profiled copy's files.
const snapshotWait = time.Minute

// snapshot asks the profiled copy for a heap profile and goroutine dump
// (SIGUSR2) and waits until they are written, so the next phase (which
// may stop the agents) does not change what they show. The copy renames
// each file into place once complete.
func (p *cpProcess) snapshot(ctx context.Context) error {
	n := p.snaps.Add(1)
	p.signal(syscall.SIGUSR2)
	last := fmt.Sprintf("%s-goroutines-%d.txt", p.profile, n)
	deadline := time.Now().Add(snapshotWait)
	for {
		if _, err := os.Stat(last); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("profile snapshot %s not written within %v", last, snapshotWait)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}
