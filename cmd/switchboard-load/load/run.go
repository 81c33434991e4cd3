package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
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
	FleetFull    Latencies  // GET /v1/fleet?limit=fullFleetLimit(N)
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

	// Cluster is the part of a run with several replicas; nil otherwise.
	Cluster *ClusterResult

	Load            []WorkerStats // per worker, at the end
	LoadRSS         int64         // workers + coordinator
	CoordinatorRSS  int64
	HealthyAfter    time.Duration
	ReconnectMinMax [2]time.Duration
}

// Run provisions, starts the control plane and the simulated fleet, and
// measures. Every wait is bounded; everything started is stopped before
// it returns. It returns no Result when the run fails before the agents
// dial, and the Result so far when a measuring phase fails.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := newRunner(cfg)
	if err := r.sizeWorkers(); err != nil {
		return nil, err
	}
	if err := r.findPrograms(); err != nil {
		return nil, err
	}
	cleanup, err := r.makeDir()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := r.provisionStore(ctx); err != nil {
		return nil, err
	}
	if cfg.Replicas > 1 {
		return r.runCluster(ctx)
	}
	if err := r.startControlPlane(ctx); err != nil {
		return nil, err
	}
	defer r.stopControlPlane()
	return r.measure(ctx, []string{r.launcher.base}, r.connect, r.idle, r.fleetQueries, r.originate, r.restart, r.loadStats)
}

// runner is the state one run's phases share.
type runner struct {
	cfg   Config // as resolved by findPrograms; Result.Config is as given
	res   *Result
	begin time.Time
	per   int // agents one process can hold within RLIMIT_NOFILE
	dir   string

	plan     *fleetPlan
	launcher *cpLauncher
	cp       *cpProcess // nil when a restart failed to start
	workers  []*workerHandle
	client   *http.Client

	dialedAt    time.Time // every agent was told to dial
	connectedAt time.Time // every agent was connected
}

func newRunner(cfg Config) *runner {
	res := &Result{Config: cfg, Agents: cfg.Agents, RestartSignal: cfg.RestartSignal}
	res.HealthyAfter = cmpOr(cfg.HealthyAfter, agent.DefaultHealthyAfter)
	res.ReconnectMinMax = [2]time.Duration{cmpOr(cfg.ReconnectMin, agent.DefaultReconnectMin), cmpOr(cfg.ReconnectMax, agent.DefaultReconnectMax)}
	return &runner{cfg: cfg, res: res, begin: time.Now()}
}

// say writes one progress line, stamped with the time since the start.
func (r *runner) say(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "[%6.1fs] %s\n", time.Since(r.begin).Seconds(), fmt.Sprintf(format, args...))
}

// sizeWorkers raises RLIMIT_NOFILE and decides how many worker processes
// the agents need, or says why the requested number cannot hold them.
func (r *runner) sizeWorkers() error {
	cfg, res := r.cfg, r.res
	limit, err := raiseFDLimit()
	if err != nil {
		return err
	}
	res.FDLimit = limit
	per := agentsPerProcess(limit)
	r.per = per
	switch {
	case cfg.Workers == -1:
		res.Workers = (cfg.Agents + per - 1) / max(per, 1)
	case cfg.Workers == 0 && cfg.Agents > per:
		return fmt.Errorf("%d agents need about %d file descriptors in one process, the limit is %d: use worker processes (--workers -1)", cfg.Agents, cfg.Agents*fdsPerAgent+fdReserve, limit)
	default:
		res.Workers = cfg.Workers
	}
	if res.Workers > 0 && (cfg.Agents+res.Workers-1)/res.Workers > per {
		return fmt.Errorf("%d agents per worker exceed the %d that RLIMIT_NOFILE %d allows (%d descriptors each): use more workers", (cfg.Agents+res.Workers-1)/res.Workers, per, limit, fdsPerAgent)
	}
	if res.Workers > 254 {
		return fmt.Errorf("%d workers: at most 254 (one loopback address each)", res.Workers)
	}
	return nil
}

// findPrograms resolves this program (for worker processes and the
// profiled control plane) and the switchboard binary, or makes the
// profile directory.
func (r *runner) findPrograms() error {
	var err error
	if r.cfg.Self == "" && (r.res.Workers > 0 || r.cfg.Profile != "") {
		if r.cfg.Self, err = os.Executable(); err != nil {
			return fmt.Errorf("find this program for worker processes: %w", err)
		}
	}
	if r.cfg.Profile == "" {
		if r.cfg.Switchboard, err = findSwitchboard(r.cfg.Switchboard); err != nil {
			return err
		}
	} else if err := os.MkdirAll(r.cfg.Profile, 0o755); err != nil {
		return fmt.Errorf("profile dir: %w", err)
	}
	return nil
}

// makeDir makes the run's directory (logs, the SQLite store, secrets);
// cleanup removes it when Run made it and --keep is off.
func (r *runner) makeDir() (cleanup func(), err error) {
	cleanup = func() {}
	r.dir = r.cfg.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "switchboard-load-"); err != nil {
			return nil, err
		}
		if !r.cfg.Keep {
			dir := r.dir
			cleanup = func() { os.RemoveAll(dir) }
		}
	} else if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	r.say("%d agents, %d per enterprise, %d worker processes (RLIMIT_NOFILE %d: up to %d agents each), files in %s",
		r.cfg.Agents, r.cfg.PBXsPerEnterprise, r.res.Workers, r.res.FDLimit, r.per, r.dir)
	return cleanup, nil
}

// provisionStore fills the store with the enterprises, agents and keys.
func (r *runner) provisionStore(ctx context.Context) error {
	plan, err := provision(ctx, r.dir, r.cfg.DB, r.cfg.Agents, r.cfg.PBXsPerEnterprise)
	if err != nil {
		return err
	}
	r.plan = plan
	r.res.Provision, r.res.Enterprises = plan.Took, plan.Enterprise
	r.say("provisioned %d enterprises, %d agents, %d API keys in %v", plan.Enterprise, len(plan.Agents), plan.Enterprise, plan.Took.Round(time.Millisecond))
	return nil
}

// startControlPlane starts the control plane child and waits until it
// answers.
func (r *runner) startControlPlane(ctx context.Context) error {
	launcher, err := newCPLauncher(r.cfg, r.dir, r.plan)
	if err != nil {
		return err
	}
	r.launcher = launcher
	r.res.ControlArgv = launcher.argv
	if r.cp, err = launcher.start(ctx); err != nil {
		return err
	}
	r.say("control plane pid %d at %s: %s", r.cp.pid(), launcher.base, strings.Join(launcher.argv, " "))
	return nil
}

func (r *runner) stopControlPlane() {
	if r.cp != nil {
		_ = r.cp.stop(syscall.SIGTERM)
	}
}

// startFleet starts the workers, their agents dialling bases, and waits
// until every fake Asterisk listens. The workers it started are in
// r.workers even when it fails, so stopFleet stops them.
func (r *runner) startFleet(ctx context.Context, bases []string) error {
	var err error
	r.workers, err = startWorkers(ctx, r.cfg, r.res.Workers, r.plan, bases, r.dir)
	if err != nil {
		return err
	}
	stats, err := allStats(ctx, r.workers, "")
	if err != nil {
		return err
	}
	r.say("%d fake Asterisks listening; load processes RSS %s", r.cfg.Agents, mib(sumRSS(stats)))
	return nil
}

func (r *runner) stopFleet() {
	r.say("stopping %d agents and fakes", r.cfg.Agents)
	for _, err := range stopWorkers(r.workers) {
		r.say("stop: %v", err)
	}
}

// dial tells every agent to dial at once.
func (r *runner) dial(ctx context.Context) error {
	r.dialedAt = time.Now()
	_, err := allStats(ctx, r.workers, cmdConnect)
	return err
}

// measure starts the simulated fleet dialling the control planes at
// bases, tells every agent to dial at once and runs the phases in order;
// the first that fails ends the run. Agents that did not come back after a
// restart or a kill (recorded so the later phases still run) fail it at
// the end.
func (r *runner) measure(ctx context.Context, bases []string, phases ...func(context.Context) error) (*Result, error) {
	err := r.startFleet(ctx, bases)
	defer r.stopFleet()
	if err != nil {
		return nil, err
	}
	r.client = newHTTPClient(min(r.cfg.MaxInFlight, 2000))
	defer r.client.CloseIdleConnections()
	if err := r.dial(ctx); err != nil {
		return nil, err
	}
	for _, phase := range phases {
		if err := phase(ctx); err != nil {
			return r.res, err
		}
	}
	if e := r.res.ReconnectErr; e != "" {
		return r.res, errors.New(e)
	}
	if c := r.res.Cluster; c != nil && c.RecoverErr != "" {
		return r.res, errors.New(c.RecoverErr)
	}
	return r.res, nil
}

// startWorkers splits the agents over the workers and waits until each
// has its fakes listening.
func startWorkers(ctx context.Context, cfg Config, n int, plan *fleetPlan, bases []string, dir string) ([]*workerHandle, error) {
	servers := make([]string, len(bases))
	for i, b := range bases {
		servers[i] = "ws" + strings.TrimPrefix(b, "http") + protocol.ConnectPath
	}
	procs := max(n, 1)
	var hs []*workerHandle
	for i := range procs {
		lo, hi := i*len(plan.Agents)/procs, (i+1)*len(plan.Agents)/procs
		spec := WorkerSpec{
			Index: i, Server: servers[0], MoreServers: servers[1:], FakeHost: "127.0.0.1", Agents: plan.Agents[lo:hi],
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
