package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// workerReadyTimeout bounds starting the fakes of one worker.
const workerReadyTimeout = 5 * time.Minute

// Result is everything a run measured.
type Result struct {
	Config      Config
	Agents      int
	Enterprises int
	Workers     int // 0: in process
	FDLimit     uint64
	Provision   time.Duration
	ControlArgv []string

	Connect    connectProgress
	ConnectErr string

	Idle         ProcSample // control plane after Settle with all connected
	IdleCPU      float64    // % of one core over Settle
	FleetFull    Latencies  // GET /v1/fleet?limit=min(N,10000)
	FleetBytes   int
	FleetDefault Latencies // GET /v1/fleet (the API's default page)
	FleetPage    Latencies // GET /v1/fleet?connected=false
	Originate    OriginateResult
	OriginateCPU float64 // control plane, % of one core during the phase
	// LoadCPU is the load processes' CPU during the calls (% of one
	// core); MachineIdle and MachineBusy the whole machine's busy share
	// (% of all cores) while idle and during the calls: on a 2-core
	// machine the simulated fleet competes with the control plane.
	LoadCPU, LoadIdleCPU     float64
	MachineIdle, MachineBusy float64
	AfterCalls               ProcSample
	EventsStored             float64 // during the originate phase
	EventsPerSec             float64

	Restarted      bool
	RestartSignal  string
	StopErr        string        // the old control plane did not stop as asked
	Downtime       time.Duration // signal to the new control plane answering
	Reconnect      connectProgress
	ReconnectErr   string
	SessionAge     time.Duration // how long sessions had lived at the restart
	AfterReconnect ProcSample

	Load            []WorkerStats // per worker, at the end
	LoadRSS         int64         // workers + coordinator
	CoordinatorRSS  int64
	HealthyAfter    time.Duration
	ReconnectMinMax [2]time.Duration
}

// Run provisions, starts the control plane and the simulated fleet, and
// measures. Every wait is bounded; everything started is stopped before
// it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	begin := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "[%6.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	res := &Result{Config: cfg, Agents: cfg.Agents, RestartSignal: cfg.RestartSignal}
	res.HealthyAfter = cmpOr(cfg.HealthyAfter, agent.DefaultHealthyAfter)
	res.ReconnectMinMax = [2]time.Duration{cmpOr(cfg.ReconnectMin, agent.DefaultReconnectMin), cmpOr(cfg.ReconnectMax, agent.DefaultReconnectMax)}

	limit, err := raiseFDLimit()
	if err != nil {
		return nil, err
	}
	res.FDLimit = limit
	per := agentsPerProcess(limit)
	switch {
	case cfg.Workers == -1:
		res.Workers = (cfg.Agents + per - 1) / max(per, 1)
	case cfg.Workers == 0 && cfg.Agents > per:
		return nil, fmt.Errorf("%d agents need about %d file descriptors in one process, the limit is %d: use worker processes (--workers -1)", cfg.Agents, cfg.Agents*fdsPerAgent+fdReserve, limit)
	default:
		res.Workers = cfg.Workers
	}
	if res.Workers > 0 && (cfg.Agents+res.Workers-1)/res.Workers > per {
		return nil, fmt.Errorf("%d agents per worker exceed the %d that RLIMIT_NOFILE %d allows (%d descriptors each): use more workers", (cfg.Agents+res.Workers-1)/res.Workers, per, limit, fdsPerAgent)
	}
	if res.Workers > 254 {
		return nil, fmt.Errorf("%d workers: at most 254 (one loopback address each)", res.Workers)
	}
	if cfg.Self == "" && (res.Workers > 0 || cfg.Profile != "") {
		if cfg.Self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find this program for worker processes: %w", err)
		}
	}
	if cfg.Profile == "" {
		if cfg.Switchboard, err = findSwitchboard(cfg.Switchboard); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}

	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "switchboard-load-"); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	say("%d agents, %d per enterprise, %d worker processes (RLIMIT_NOFILE %d: up to %d agents each), files in %s",
		cfg.Agents, cfg.PBXsPerEnterprise, res.Workers, limit, per, dir)

	plan, err := provision(ctx, dir, cfg.DB, cfg.Agents, cfg.PBXsPerEnterprise)
	if err != nil {
		return nil, err
	}
	res.Provision, res.Enterprises = plan.Took, plan.Enterprise
	say("provisioned %d enterprises, %d agents, %d API keys in %v", plan.Enterprise, len(plan.Agents), plan.Enterprise, plan.Took.Round(time.Millisecond))

	launcher, err := newCPLauncher(cfg, dir, plan)
	if err != nil {
		return nil, err
	}
	res.ControlArgv = launcher.argv
	cp, err := launcher.start(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cp != nil { // nil when a restart failed to start
			_ = cp.stop(syscall.SIGTERM)
		}
	}()
	base := launcher.base
	say("control plane pid %d at %s: %s", cp.pid(), base, strings.Join(launcher.argv, " "))

	workers, err := startWorkers(ctx, cfg, res.Workers, plan, base, dir)
	defer func() {
		say("stopping %d agents and fakes", cfg.Agents)
		for _, err := range stopWorkers(workers) {
			say("stop: %v", err)
		}
	}()
	if err != nil {
		return nil, err
	}
	stats, err := allStats(ctx, workers, "")
	if err != nil {
		return nil, err
	}
	say("%d fake Asterisks listening; load processes RSS %s", cfg.Agents, mib(sumRSS(stats)))

	client := newHTTPClient(min(cfg.MaxInFlight, 2000))
	defer client.CloseIdleConnections()

	// 1. Every agent dials at once.
	t0 := time.Now()
	if _, err := allStats(ctx, workers, cmdConnect); err != nil {
		return nil, err
	}
	res.Connect, err = waitConnected(ctx, client, base, cfg.Agents, t0, cfg.ReconnectGoal, cfg.ConnectTimeout)
	if err != nil {
		res.ConnectErr = err.Error()
		say("connect: %v", err)
		return res, err
	}
	connectedAt := time.Now()
	if cfg.Profile != "" {
		cp.signal(syscall.SIGUSR1) // CPU profile of the idle phase
	}
	say("all %d connected in %v (50%% %v, 90%% %v, 99%% %v)", cfg.Agents, res.Connect.All.Round(time.Millisecond),
		res.Connect.Half.Round(time.Millisecond), res.Connect.P90.Round(time.Millisecond), res.Connect.P99.Round(time.Millisecond))

	// 2. Idle with everything connected: heartbeats, keepalives, direct calls.
	s0, err := sampleProc(cp.pid())
	if err != nil {
		return res, err
	}
	mach0, _ := sampleMachine()
	li0, err := loadCPU(ctx, workers, res.Workers > 0)
	if err != nil {
		return res, err
	}
	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	if res.Idle, err = sampleProc(cp.pid()); err != nil {
		return res, err
	}
	res.IdleCPU = cpuPercent(s0, res.Idle)
	mach1, _ := sampleMachine()
	res.MachineIdle = busyPercent(mach0, mach1)
	if li1, err := loadCPU(ctx, workers, res.Workers > 0); err == nil {
		res.LoadIdleCPU = 100 * float64(li1-li0) / float64(mach1.At.Sub(mach0.At))
	}
	say("idle %v: control plane RSS %s (peak %s), CPU %.1f%% of one core, %d fds, %d threads; load processes %.0f%% of one core; machine %.0f%% busy",
		cfg.Settle, mib(res.Idle.RSS), mib(res.Idle.PeakRSS), res.IdleCPU, res.Idle.OpenFDs, res.Idle.Threads, res.LoadIdleCPU, res.MachineIdle)
	if cfg.Profile != "" {
		// Idle: the CPU profile (started after the connect) ends; heap
		// and goroutines with every agent connected.
		cp.signal(syscall.SIGUSR1)
		cp.signal(syscall.SIGUSR2)
	}

	// 3. The fleet view.
	if cfg.FleetQueries > 0 {
		q := fmt.Sprintf("limit=%d", min(cfg.Agents, api.MaxFleetPageSize))
		if res.FleetFull, res.FleetBytes, err = fleetLatency(ctx, client, base, plan.AdminJWT, q, cfg.FleetQueries); err != nil {
			return res, err
		}
		if res.FleetDefault, _, err = fleetLatency(ctx, client, base, plan.AdminJWT, "", cfg.FleetQueries); err != nil {
			return res, err
		}
		if res.FleetPage, _, err = fleetLatency(ctx, client, base, plan.AdminJWT, "connected=false", cfg.FleetQueries); err != nil {
			return res, err
		}
		say("GET /v1/fleet?%s (%d KiB): p50 %v p99 %v; default page: p50 %v p99 %v; ?connected=false: p50 %v p99 %v", q, res.FleetBytes>>10,
			res.FleetFull.P50.Round(time.Microsecond), res.FleetFull.P99.Round(time.Microsecond),
			res.FleetDefault.P50.Round(time.Microsecond), res.FleetDefault.P99.Round(time.Microsecond),
			res.FleetPage.P50.Round(time.Microsecond), res.FleetPage.P99.Round(time.Microsecond))
	}

	// 4. Originate at the target rate, spread over every PBX.
	if cfg.OriginateRate > 0 {
		m0, _ := scrapeMetrics(ctx, client, base, metricEventsIn)
		o0, _ := sampleProc(cp.pid())
		l0, err := loadCPU(ctx, workers, res.Workers > 0)
		if err != nil {
			return res, err
		}
		mach0, _ := sampleMachine()
		if cfg.Profile != "" {
			// CPU profile of the calls; heap and goroutines halfway.
			cp.signal(syscall.SIGUSR1)
			t := time.AfterFunc(cfg.OriginateDuration/2, func() { cp.signal(syscall.SIGUSR2) })
			defer t.Stop()
		}
		res.Originate = originateLoad(ctx, client, base, plan.Agents, cfg.OriginateRate, cfg.OriginateDuration, cfg.MaxInFlight)
		if cfg.Profile != "" {
			cp.signal(syscall.SIGUSR1)
		}
		// Events of the calls arrive shortly after the answers.
		_ = sleep(ctx, min(time.Second, cfg.Settle))
		res.AfterCalls, _ = sampleProc(cp.pid())
		res.OriginateCPU = cpuPercent(o0, res.AfterCalls)
		mach1, _ := sampleMachine()
		res.MachineBusy = busyPercent(mach0, mach1)
		if l1, err := loadCPU(ctx, workers, res.Workers > 0); err == nil {
			res.LoadCPU = 100 * float64(l1-l0) / float64(mach1.At.Sub(mach0.At))
		}
		if m1, err := scrapeMetrics(ctx, client, base, metricEventsIn); err == nil && m0 != nil {
			res.EventsStored = m1[metricEventsIn] - m0[metricEventsIn]
			res.EventsPerSec = res.EventsStored / res.AfterCalls.At.Sub(o0.At).Seconds()
		}
		o := res.Originate
		say("originate %d/s for %v: sent %d, missed %d, %.0f/s achieved; latency p50 %v p99 %v max %v (service p50 %v p99 %v); %s %s; "+
			"CP CPU %.0f%%, RSS %s; load CPU %.0f%%; machine %.0f%% busy; %0.f events stored (%.0f/s)",
			cfg.OriginateRate, cfg.OriginateDuration, o.Sent, o.Missed, o.Achieved,
			o.Latency.P50.Round(time.Microsecond), o.Latency.P99.Round(time.Microsecond), o.Latency.Max.Round(time.Millisecond),
			o.Service.P50.Round(time.Microsecond), o.Service.P99.Round(time.Microsecond),
			o.Latency.codesString(), errorsString(o.Errors), res.OriginateCPU, mib(res.AfterCalls.RSS), res.LoadCPU, res.MachineBusy,
			res.EventsStored, res.EventsPerSec)
		if _, err := allStats(ctx, workers, cmdHangup); err != nil {
			return res, err
		}
	}

	// 5. Kill and restart the control plane; every agent must come back.
	if cfg.Restart {
		if wait := time.Until(connectedAt.Add(res.HealthyAfter)); wait > 0 {
			say("waiting %v so every session has lived HealthyAfter (%v) and backoffs start over", wait.Round(time.Second), res.HealthyAfter)
			if err := sleep(ctx, wait); err != nil {
				return res, err
			}
		}
		res.SessionAge = time.Since(connectedAt)
		sig := syscall.SIGKILL
		if cfg.RestartSignal == "term" || cfg.Profile != "" {
			sig, res.RestartSignal = syscall.SIGTERM, "term"
		}
		kill := time.Now()
		if err := cp.stop(sig); err != nil {
			// A graceful stop that overran was ended with SIGKILL: the
			// restart goes on, and the report says so.
			res.StopErr = err.Error()
			say("%v", err)
		}
		if cp, err = launcher.start(ctx); err != nil {
			return res, err
		}
		res.Restarted, res.Downtime = true, time.Since(kill)
		if cfg.Profile != "" {
			cp.signal(syscall.SIGUSR1) // CPU profile of the reconnect storm
		}
		say("control plane restarted (pid %d) %v after SIG%s", cp.pid(), res.Downtime.Round(time.Millisecond), strings.ToUpper(res.RestartSignal))
		res.Reconnect, err = waitConnected(ctx, client, base, cfg.Agents, kill, cfg.ReconnectGoal, cfg.ReconnectTimeout)
		if cfg.Profile != "" {
			cp.signal(syscall.SIGUSR1)
			cp.signal(syscall.SIGUSR2)
		}
		if err != nil {
			res.ReconnectErr = err.Error()
			say("reconnect: %v", err)
		} else {
			say("all %d reconnected %v after the signal (50%% %v, 90%% %v, 99%% %v); %d within %v",
				cfg.Agents, res.Reconnect.All.Round(time.Millisecond), res.Reconnect.Half.Round(time.Millisecond),
				res.Reconnect.P90.Round(time.Millisecond), res.Reconnect.P99.Round(time.Millisecond), res.Reconnect.AtGoal, cfg.ReconnectGoal)
		}
		// The resent events and first heartbeats of the new sessions.
		_ = sleep(ctx, min(2*time.Second, cfg.Settle))
		res.AfterReconnect, _ = sampleProc(cp.pid())
	}

	if res.Load, err = allStats(ctx, workers, cmdStats); err != nil {
		return res, err
	}
	res.LoadRSS = sumRSS(res.Load)
	if res.Workers > 0 {
		if me, err := sampleProc(os.Getpid()); err == nil {
			res.CoordinatorRSS = me.RSS
			res.LoadRSS += me.RSS
		}
	}
	var failed int64
	for _, s := range res.Load {
		failed += s.AgentsFailed
	}
	say("load processes: RSS %s in total; %d agents stopped with an error", mib(res.LoadRSS), failed)
	if res.ReconnectErr != "" {
		return res, errors.New(res.ReconnectErr)
	}
	return res, nil
}

// startWorkers splits the agents over the workers and waits until each
// has its fakes listening.
func startWorkers(ctx context.Context, cfg Config, n int, plan *fleetPlan, base, dir string) ([]*workerHandle, error) {
	server := "ws" + strings.TrimPrefix(base, "http") + protocol.ConnectPath
	procs := max(n, 1)
	var hs []*workerHandle
	for i := range procs {
		lo, hi := i*len(plan.Agents)/procs, (i+1)*len(plan.Agents)/procs
		spec := WorkerSpec{
			Index: i, Server: server, FakeHost: "127.0.0.1", Agents: plan.Agents[lo:hi],
			SubscriptionBuffer: cfg.SubscriptionBuffer, MaxPendingEvents: cfg.MaxPendingEvents,
			ReconnectMin: cfg.ReconnectMin, ReconnectMax: cfg.ReconnectMax, HealthyAfter: cfg.HealthyAfter,
			CallRate: cfg.CallRate / float64(procs), CallHold: cfg.CallHold,
			LogFile: filepath.Join(dir, fmt.Sprintf("agents-%d.log", i)), LogLevel: cfg.AgentLogLevel,
		}
		var h *workerHandle
		var err error
		if n == 0 {
			h, err = startWorkerInProcess(ctx, spec)
		} else {
			// Each worker's fakes get their own loopback address, so
			// 10,000 listeners do not share one address's port range.
			spec.FakeHost = fmt.Sprintf("127.0.%d.1", i+1)
			spec.Abandon = true
			h, err = startWorkerProcess(cfg.Self, spec, filepath.Join(dir, fmt.Sprintf("worker-%d.stderr", i)))
		}
		if err != nil {
			return hs, err
		}
		hs = append(hs, h)
	}
	rctx, cancel := context.WithTimeout(ctx, workerReadyTimeout)
	defer cancel()
	for _, h := range hs {
		if _, err := h.reply(rctx); err != nil {
			return hs, fmt.Errorf("worker %d start: %w", h.index, err)
		}
	}
	return hs, nil
}

// stopWorkers stops every worker at once (each closes thousands of agents
// and fakes) and returns their errors.
func stopWorkers(ws []*workerHandle) []error {
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.stop() }()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// allStats sends cmd (or, when empty, only reads stats) to every worker
// and returns their replies.
func allStats(ctx context.Context, ws []*workerHandle, cmd string) ([]WorkerStats, error) {
	if cmd == "" {
		cmd = cmdStats
	}
	out := make([]WorkerStats, 0, len(ws))
	for _, w := range ws {
		if err := w.enc.Encode(workerCmd{Cmd: cmd}); err != nil {
			return nil, fmt.Errorf("worker %d: send %s: %w", w.index, cmd, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, workerReadyTimeout)
	defer cancel()
	for _, w := range ws {
		s, err := w.reply(rctx)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// loadCPU is the CPU time used so far by the workers and, when they are
// processes, by this one too.
func loadCPU(ctx context.Context, ws []*workerHandle, processes bool) (time.Duration, error) {
	st, err := allStats(ctx, ws, cmdStats)
	if err != nil {
		return 0, err
	}
	var d time.Duration
	for _, s := range st {
		d += s.CPU
	}
	if processes {
		if me, err := sampleProc(os.Getpid()); err == nil {
			d += me.CPU
		}
	}
	return d, nil
}

func sumRSS(s []WorkerStats) int64 {
	var n int64
	for _, x := range s {
		n += x.RSS
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// findSwitchboard resolves the control plane binary: the flag, then a
// `switchboard` next to this program, then PATH.
func findSwitchboard(flag string) (string, error) {
	if flag != "" {
		if _, err := os.Stat(flag); err != nil {
			return "", fmt.Errorf("--switchboard: %w", err)
		}
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "switchboard")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("switchboard"); err == nil {
		return p, nil
	}
	return "", errors.New("no switchboard binary: build one (go build -o bin/ ./cmd/switchboard ./cmd/switchboard-load) or pass --switchboard")
}

// machine describes where the run happened, for the report.
func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs, Linux %s, %s", runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
}
