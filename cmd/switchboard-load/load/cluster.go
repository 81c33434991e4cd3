package load

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ClusterResult is what a run with several replicas measured.
type ClusterResult struct {
	Replicas []ReplicaResult
	// KilledIndex was SIGKILLed holding KilledAgents PBXs; Recovered is
	// the time from the signal until every agent was connected to a
	// surviving replica and a request for each of the killed replica's
	// PBXs, through a random survivor, reached its agent.
	KilledIndex, KilledAgents int
	Recovered                 time.Duration
	RecoverErr                string
	// The subscribers on a surviving replica, over the whole run.
	Subscribed, EventsSeen, EventsLost, EventsDuplicated int
	// Rolling restart: every replica SIGTERMed and started again, one by
	// one, while a client that retries a 503 after its Retry-After (and a
	// refused connection at once, on another replica) places calls.
	Rolling RollingResult
}

// ReplicaResult is one replica's share of the run.
type ReplicaResult struct {
	Base      string
	Agents    int        // connected to it, idle
	Idle      ProcSample // after Settle, all connected
	IdleCPU   float64    // % of one core over Settle
	Fleet     Latencies  // GET /v1/fleet?limit=fullFleetLimit(N) on it
	CallsCPU  float64    // % of one core during the originate phase
	AfterCall ProcSample
}

// runCluster is Run with cfg.Replicas control planes clustered on the
// PostgreSQL store: connect, idle (per replica), the fleet view from each
// replica, calls through random replicas, a SIGKILL of one replica and
// the recovery of its PBXs with subscribers on a survivor checked for
// lost or duplicated events, a rolling restart under calls, load stats.
func (r *runner) runCluster(ctx context.Context) (*Result, error) {
	cfg, res := r.cfg, r.res
	res.Cluster = &ClusterResult{KilledIndex: -1}
	secret := filepath.Join(r.dir, "cluster.secret")
	if err := os.WriteFile(secret, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
		return nil, err
	}
	c := &clusterRun{runner: r}
	for i := range cfg.Replicas {
		l, err := newCPLauncher(cfg, r.dir, r.plan)
		if err != nil {
			return nil, err
		}
		l.name = fmt.Sprintf("replica-%d", i)
		l.argv = append(l.argv, "--cluster-secret-file", secret)
		c.launchers = append(c.launchers, l)
		res.Cluster.Replicas = append(res.Cluster.Replicas, ReplicaResult{Base: l.base})
	}
	res.ControlArgv = c.launchers[0].argv
	c.cps = make([]*cpProcess, cfg.Replicas)
	defer c.stopAll()
	for i, l := range c.launchers {
		p, err := l.start(ctx)
		if err != nil {
			return nil, err
		}
		c.cps[i] = p
		r.say("replica %d pid %d at %s", i, p.pid(), l.base)
	}
	return r.measure(ctx, c.bases(), c.connect, c.idle, c.fleet, c.originate, c.kill, c.rolling, r.loadStats)
}

// clusterRun is the state of a cluster run's phases.
type clusterRun struct {
	*runner
	launchers []*cpLauncher
	cps       []*cpProcess // nil: stopped
	subs      *subscribers
}

func (c *clusterRun) bases() []string {
	out := make([]string, len(c.launchers))
	for i, l := range c.launchers {
		out[i] = l.base
	}
	return out
}

// live is the bases of the running replicas.
func (c *clusterRun) live() []string {
	var out []string
	for i, p := range c.cps {
		if p != nil {
			out = append(out, c.launchers[i].base)
		}
	}
	return out
}

func (c *clusterRun) stopAll() {
	for _, p := range c.cps {
		if p != nil {
			_ = p.stop(syscall.SIGTERM)
		}
	}
}

// connected sums the agents connected to the running replicas; perReplica
// has each one's count (0 for a stopped one).
func (c *clusterRun) connected(ctx context.Context) (total int, perReplica []int, err error) {
	perReplica = make([]int, len(c.cps))
	for i, p := range c.cps {
		if p == nil {
			continue
		}
		m, err := scrapeMetrics(ctx, c.client, c.launchers[i].base, metricConnected)
		if err != nil {
			return 0, nil, err
		}
		perReplica[i] = int(m[metricConnected])
		total += perReplica[i]
	}
	return total, perReplica, nil
}

// waitAll waits until every agent is connected to a running replica.
func (c *clusterRun) waitAll(ctx context.Context, timeout time.Duration) ([]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, per, err := c.connected(ctx)
		if err == nil && n >= c.cfg.Agents {
			return per, nil
		}
		if time.Now().After(deadline) {
			return per, fmt.Errorf("%w: %d of %d after %v (%v)", errNotAll, n, c.cfg.Agents, timeout, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return per, err
		}
	}
}

func (c *clusterRun) connect(ctx context.Context) error {
	per, err := c.waitAll(ctx, c.cfg.ConnectTimeout)
	if err != nil {
		c.res.ConnectErr = err.Error()
		return err
	}
	c.res.Connect.All = time.Since(c.dialedAt)
	c.connectedAt = time.Now()
	for i, n := range per {
		c.res.Cluster.Replicas[i].Agents = n
	}
	c.say("all %d connected in %v: %v per replica", c.cfg.Agents, c.res.Connect.All.Round(time.Millisecond), per)
	return nil
}

// idle samples every replica over Settle.
func (c *clusterRun) idle(ctx context.Context) error {
	cr := c.res.Cluster
	s0 := make([]ProcSample, len(c.cps))
	for i, p := range c.cps {
		s0[i], _ = sampleProc(p.pid())
	}
	mach0, _ := sampleMachine()
	if err := sleep(ctx, c.cfg.Settle); err != nil {
		return err
	}
	mach1, _ := sampleMachine()
	c.res.MachineIdle = busyPercent(mach0, mach1)
	for i, p := range c.cps {
		s, err := sampleProc(p.pid())
		if err != nil {
			return err
		}
		cr.Replicas[i].Idle, cr.Replicas[i].IdleCPU = s, cpuPercent(s0[i], s)
		c.say("replica %d idle %v: %d agents, RSS %s (peak %s), CPU %.1f%% of one core", i, c.cfg.Settle, cr.Replicas[i].Agents,
			mib(s.RSS), mib(s.PeakRSS), cr.Replicas[i].IdleCPU)
	}
	c.say("machine %.0f%% busy while idle", c.res.MachineIdle)
	return nil
}

// fleet times GET /v1/fleet from each replica.
func (c *clusterRun) fleet(ctx context.Context) error {
	if c.cfg.FleetQueries <= 0 {
		return nil
	}
	q := fmt.Sprintf("limit=%d", fullFleetLimit(c.cfg.Agents))
	for i, l := range c.launchers {
		lat, size, err := fleetLatency(ctx, c.client, l.base, c.plan.AdminJWT, q, c.cfg.FleetQueries)
		if err != nil {
			return fmt.Errorf("replica %d: %w", i, err)
		}
		c.res.Cluster.Replicas[i].Fleet, c.res.FleetBytes = lat, size
		c.say("replica %d: GET /v1/fleet?%s (%d KiB): p50 %v p99 %v", i, q, size>>10, lat.P50.Round(time.Microsecond), lat.P99.Round(time.Microsecond))
	}
	return nil
}

// originate posts calls at the target rate, each to a random replica.
func (c *clusterRun) originate(ctx context.Context) error {
	cfg, res := c.cfg, c.res
	if cfg.OriginateRate <= 0 {
		return nil
	}
	s0 := make([]ProcSample, len(c.cps))
	for i, p := range c.cps {
		s0[i], _ = sampleProc(p.pid())
	}
	mach0, _ := sampleMachine()
	bases := c.bases()
	pick := func() string { return bases[mrand.IntN(len(bases))] }
	res.Originate = originateLoadTo(ctx, c.client, pick, c.plan.Agents, cfg.OriginateRate, cfg.OriginateDuration, cfg.MaxInFlight)
	_ = sleep(ctx, min(time.Second, cfg.Settle))
	mach1, _ := sampleMachine()
	res.MachineBusy = busyPercent(mach0, mach1)
	for i, p := range c.cps {
		s, _ := sampleProc(p.pid())
		res.Cluster.Replicas[i].AfterCall, res.Cluster.Replicas[i].CallsCPU = s, cpuPercent(s0[i], s)
	}
	o := res.Originate
	c.say("originate %d/s for %v via random replicas: sent %d, %.0f/s achieved; p50 %v p99 %v; %s %s; machine %.0f%% busy",
		cfg.OriginateRate, cfg.OriginateDuration, o.Sent, o.Achieved, o.Latency.P50.Round(time.Microsecond), o.Latency.P99.Round(time.Microsecond),
		o.Latency.codesString(), errorsString(o.Errors), res.MachineBusy)
	_, err := allStats(ctx, c.workers, cmdHangup)
	return err
}

// kill SIGKILLs the replica holding the most PBXs (not replica 0, whose
// subscribers watch), and times until every one of its PBXs is connected
// to a survivor and answers a request through one.
func (c *clusterRun) kill(ctx context.Context) error {
	cr := c.res.Cluster
	if !c.cfg.Restart {
		return nil
	}
	_, per, err := c.connected(ctx)
	if err != nil {
		return err
	}
	victim := 1
	for i := 2; i < len(per); i++ {
		if per[i] > per[victim] {
			victim = i
		}
	}
	held, err := heldBy(ctx, c.client, c.launchers[0].base, c.plan.AdminJWT, c.launchers[victim].base)
	if err != nil {
		return err
	}
	cr.KilledIndex, cr.KilledAgents = victim, len(held)
	// Subscribers on replica 0 for enterprises of the victim's PBXs, from
	// the start of their history: everything, before and after the kill,
	// must arrive once.
	if c.subs, err = subscribe(ctx, c.cfg.Switchboard, c.launchers[0].base, c.dir, c.plan, held, c.cfg.Subscribers); err != nil {
		return err
	}
	cr.Subscribed = c.subs.len()
	if err := sleep(ctx, 2*time.Second); err != nil { // the direct calls' events flow meanwhile
		return err
	}
	killed := time.Now()
	_ = c.cps[victim].stop(syscall.SIGKILL)
	c.cps[victim] = nil
	c.say("SIGKILL replica %d holding %d PBXs; %d subscribers on replica 0", victim, len(held), cr.Subscribed)
	if _, err := c.waitAll(ctx, c.cfg.ReconnectTimeout); err != nil {
		cr.RecoverErr = err.Error()
		return nil
	}
	if err := c.callable(ctx, held, killed.Add(c.cfg.ReconnectTimeout)); err != nil {
		cr.RecoverErr = err.Error()
		return nil
	}
	cr.Recovered = time.Since(killed)
	c.say("every PBX of the killed replica callable through a survivor %v after the SIGKILL", cr.Recovered.Round(time.Millisecond))
	// The killed replica comes back (as an operator would restart it).
	p, err := c.launchers[victim].start(ctx)
	if err != nil {
		return err
	}
	c.cps[victim] = p
	return nil
}

// callable waits until a request for each PBX (GET /v1/channels?pbx=),
// through a random running replica, reaches its agent.
func (c *clusterRun) callable(ctx context.Context, ids []string, deadline time.Time) error {
	keys := c.plan.keyOf()
	pending := ids
	for len(pending) > 0 {
		live := c.live()
		var (
			mu    sync.Mutex
			still []string
			wg    sync.WaitGroup
			sem   = make(chan struct{}, callableConcurrency)
		)
		for _, id := range pending {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if code := getStatus(ctx, c.client, live[mrand.IntN(len(live))]+"/v1/channels?pbx="+id, keys[id]); code != 200 {
					mu.Lock()
					still = append(still, id)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d PBXs of the killed replica still not callable", len(pending))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// callableConcurrency bounds the requests of one pass of callable: the
// pass over thousands of PBXs must not be what is measured.
const callableConcurrency = 64

// rolling restarts every replica in turn (SIGTERM, start again, ready)
// while a retrying client places calls, then checks the subscribers.
func (c *clusterRun) rolling(ctx context.Context) error {
	cr := c.res.Cluster
	if c.cfg.RollingRate > 0 {
		if _, err := c.waitAll(ctx, c.cfg.ReconnectTimeout); err != nil {
			return err
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan RollingResult, 1)
		go func() {
			done <- retryingCalls(rctx, c.client, c.bases, c.plan.Agents, c.cfg.RollingRate)
		}()
		start := time.Now()
		for i := range c.launchers {
			if err := c.restartOne(ctx, i); err != nil {
				stop()
				return err
			}
			if i < len(c.launchers)-1 {
				// As an operator would: the PBXs that just moved keep their
				// new sessions for the agents' healthy-after before the next
				// replica goes, so their redial backoff starts over.
				if err := sleep(ctx, c.res.HealthyAfter); err != nil {
					stop()
					return err
				}
			}
		}
		// The last replica's PBXs settle before the client stops.
		_, err := c.waitAll(ctx, c.cfg.ReconnectTimeout)
		_ = sleep(ctx, 2*time.Second)
		stop()
		cr.Rolling = <-done
		cr.Rolling.Took = time.Since(start)
		c.say("rolling restart of %d replicas in %v under %d calls/s: %d calls, %d answered, %d failed after retries, %d retries (%s)",
			len(c.launchers), cr.Rolling.Took.Round(time.Millisecond), c.cfg.RollingRate, cr.Rolling.Calls, cr.Rolling.OK, cr.Rolling.Failed,
			cr.Rolling.Retries, errorsString(cr.Rolling.Retried))
		if err != nil {
			return err
		}
		if _, err := allStats(ctx, c.workers, cmdHangup); err != nil {
			return err
		}
	}
	if c.subs != nil {
		_ = sleep(ctx, 3*time.Second) // the last events of the calls
		seen, lost, dup, err := c.subs.check(ctx, c.client, c.launchers[0].base)
		c.subs.close()
		if err != nil {
			return err
		}
		cr.EventsSeen, cr.EventsLost, cr.EventsDuplicated = seen, lost, dup
		c.say("subscribers on replica 0: %d events, %d lost, %d duplicated", seen, lost, dup)
	}
	return nil
}

// restartOne stops replica i gracefully, starts it again and waits until
// every agent is connected somewhere.
func (c *clusterRun) restartOne(ctx context.Context, i int) error {
	if c.cps[i] != nil {
		if err := c.cps[i].stop(syscall.SIGTERM); err != nil {
			c.say("replica %d: %v", i, err)
		}
		c.cps[i] = nil
	}
	if _, err := c.waitAll(ctx, c.cfg.ReconnectTimeout); err != nil {
		return fmt.Errorf("after stopping replica %d: %w", i, err)
	}
	p, err := c.launchers[i].start(ctx)
	if err != nil {
		return err
	}
	c.cps[i] = p
	c.say("replica %d restarted (pid %d)", i, p.pid())
	return nil
}
