package load

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// The measuring phases of a run, in the order measure runs them. Each
// fills its part of r.res; an error ends the run with the Result so far.

// connect waits until every agent, told to dial at once, is connected.
func (r *runner) connect(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	var err error
	res.Connect, err = waitConnected(ctx, r.client, r.launcher.base, cfg.Agents, r.dialedAt, cfg.ReconnectGoal, cfg.ConnectTimeout)
	if err != nil {
		res.ConnectErr = err.Error()
		r.say("connect: %v", err)
		return err
	}
	r.connectedAt = time.Now()
	if cfg.Profile != "" {
		r.cp.signal(syscall.SIGUSR1) // CPU profile of the idle phase
	}
	r.say("all %d connected in %v (50%% %v, 90%% %v, 99%% %v)", cfg.Agents, res.Connect.All.Round(time.Millisecond),
		res.Connect.Half.Round(time.Millisecond), res.Connect.P90.Round(time.Millisecond), res.Connect.P99.Round(time.Millisecond))
	return nil
}

// idle samples the control plane for Settle with everything connected:
// heartbeats, keepalives, direct calls.
func (r *runner) idle(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	s0, err := sampleProc(r.cp.pid())
	if err != nil {
		return err
	}
	mach0, _ := sampleMachine()
	li0, err := loadCPU(ctx, r.workers, res.Workers > 0)
	if err != nil {
		return err
	}
	if err := sleep(ctx, cfg.Settle); err != nil {
		return err
	}
	if res.Idle, err = sampleProc(r.cp.pid()); err != nil {
		return err
	}
	res.IdleCPU = cpuPercent(s0, res.Idle)
	mach1, _ := sampleMachine()
	res.MachineIdle = busyPercent(mach0, mach1)
	if li1, err := loadCPU(ctx, r.workers, res.Workers > 0); err == nil {
		res.LoadIdleCPU = 100 * float64(li1-li0) / float64(mach1.At.Sub(mach0.At))
	}
	r.say("idle %v: control plane RSS %s (peak %s), CPU %.1f%% of one core, %d fds, %d threads; load processes %.0f%% of one core; machine %.0f%% busy",
		cfg.Settle, mib(res.Idle.RSS), mib(res.Idle.PeakRSS), res.IdleCPU, res.Idle.OpenFDs, res.Idle.Threads, res.LoadIdleCPU, res.MachineIdle)
	if cfg.Profile != "" {
		// Idle: the CPU profile (started after the connect) ends; heap
		// and goroutines with every agent connected.
		r.cp.signal(syscall.SIGUSR1)
		if err := r.cp.snapshot(ctx); err != nil {
			r.say("%v", err)
		}
	}
	return nil
}

// fleetQueries times the fleet view: the whole fleet up to the API's page
// limit, the default page, and a filtered page.
func (r *runner) fleetQueries(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	if cfg.FleetQueries <= 0 {
		return nil
	}
	base, jwt := r.launcher.base, r.plan.AdminJWT
	var err error
	q := fmt.Sprintf("limit=%d", fullFleetLimit(cfg.Agents))
	if res.FleetFull, res.FleetBytes, err = fleetLatency(ctx, r.client, base, jwt, q, cfg.FleetQueries); err != nil {
		return err
	}
	if res.FleetDefault, _, err = fleetLatency(ctx, r.client, base, jwt, "", cfg.FleetQueries); err != nil {
		return err
	}
	if res.FleetPage, _, err = fleetLatency(ctx, r.client, base, jwt, "connected=false", cfg.FleetQueries); err != nil {
		return err
	}
	r.say("GET /v1/fleet?%s (%d KiB): p50 %v p99 %v; default page: p50 %v p99 %v; ?connected=false: p50 %v p99 %v", q, res.FleetBytes>>10,
		res.FleetFull.P50.Round(time.Microsecond), res.FleetFull.P99.Round(time.Microsecond),
		res.FleetDefault.P50.Round(time.Microsecond), res.FleetDefault.P99.Round(time.Microsecond),
		res.FleetPage.P50.Round(time.Microsecond), res.FleetPage.P99.Round(time.Microsecond))
	return nil
}

// originate posts calls at the target rate, spread over every PBX, and
// measures the control plane, the load processes and the machine
// meanwhile; then it hangs every call up.
func (r *runner) originate(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	if cfg.OriginateRate <= 0 {
		return nil
	}
	base := r.launcher.base
	m0, _ := scrapeMetrics(ctx, r.client, base, metricEventsIn)
	o0, _ := sampleProc(r.cp.pid())
	l0, err := loadCPU(ctx, r.workers, res.Workers > 0)
	if err != nil {
		return err
	}
	mach0, _ := sampleMachine()
	if cfg.Profile != "" {
		// CPU profile of the calls; heap and goroutines halfway.
		cp := r.cp
		cp.signal(syscall.SIGUSR1)
		t := time.AfterFunc(cfg.OriginateDuration/2, func() { cp.snaps.Add(1); cp.signal(syscall.SIGUSR2) })
		defer t.Stop()
	}
	res.Originate = originateLoad(ctx, r.client, base, r.plan.Agents, cfg.OriginateRate, cfg.OriginateDuration, cfg.MaxInFlight)
	if cfg.Profile != "" {
		r.cp.signal(syscall.SIGUSR1)
	}
	// Events of the calls arrive shortly after the answers.
	_ = sleep(ctx, min(time.Second, cfg.Settle))
	res.AfterCalls, _ = sampleProc(r.cp.pid())
	res.OriginateCPU = cpuPercent(o0, res.AfterCalls)
	mach1, _ := sampleMachine()
	res.MachineBusy = busyPercent(mach0, mach1)
	if l1, err := loadCPU(ctx, r.workers, res.Workers > 0); err == nil {
		res.LoadCPU = 100 * float64(l1-l0) / float64(mach1.At.Sub(mach0.At))
	}
	if m1, err := scrapeMetrics(ctx, r.client, base, metricEventsIn); err == nil && m0 != nil {
		res.EventsStored = m1[metricEventsIn] - m0[metricEventsIn]
		res.EventsPerSec = res.EventsStored / res.AfterCalls.At.Sub(o0.At).Seconds()
	}
	r.sayOriginate()
	_, err = allStats(ctx, r.workers, cmdHangup)
	return err
}

func (r *runner) sayOriginate() {
	cfg, res, o := r.cfg, r.res, r.res.Originate
	r.say("originate %d/s for %v: sent %d, missed %d, %.0f/s achieved; latency p50 %v p99 %v max %v (service p50 %v p99 %v); %s %s; "+
		"CP CPU %.0f%%, RSS %s; load CPU %.0f%%; machine %.0f%% busy; %0.f events stored (%.0f/s)",
		cfg.OriginateRate, cfg.OriginateDuration, o.Sent, o.Missed, o.Achieved,
		o.Latency.P50.Round(time.Microsecond), o.Latency.P99.Round(time.Microsecond), o.Latency.Max.Round(time.Millisecond),
		o.Service.P50.Round(time.Microsecond), o.Service.P99.Round(time.Microsecond),
		o.Latency.codesString(), errorsString(o.Errors), res.OriginateCPU, mib(res.AfterCalls.RSS), res.LoadCPU, res.MachineBusy,
		res.EventsStored, res.EventsPerSec)
}

// restart kills and restarts the control plane; every agent must come
// back. Agents that do not come back within ReconnectTimeout are recorded
// in ReconnectErr, not returned, so the load stats are still collected.
func (r *runner) restart(ctx context.Context) error {
	cfg, res := r.cfg, r.res
	if !cfg.Restart {
		return nil
	}
	if wait := time.Until(r.connectedAt.Add(res.HealthyAfter)); wait > 0 {
		r.say("waiting %v so every session has lived HealthyAfter (%v) and backoffs start over", wait.Round(time.Second), res.HealthyAfter)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	res.SessionAge = time.Since(r.connectedAt)
	kill, err := r.restartControlPlane(ctx)
	if err != nil {
		return err
	}
	res.Reconnect, err = waitConnected(ctx, r.client, r.launcher.base, cfg.Agents, kill, cfg.ReconnectGoal, cfg.ReconnectTimeout)
	if cfg.Profile != "" {
		r.cp.signal(syscall.SIGUSR1)
		if err := r.cp.snapshot(ctx); err != nil {
			r.say("%v", err)
		}
	}
	if err != nil {
		res.ReconnectErr = err.Error()
		r.say("reconnect: %v", err)
	} else {
		r.say("all %d reconnected %v after the signal (50%% %v, 90%% %v, 99%% %v); %d within %v",
			cfg.Agents, res.Reconnect.All.Round(time.Millisecond), res.Reconnect.Half.Round(time.Millisecond),
			res.Reconnect.P90.Round(time.Millisecond), res.Reconnect.P99.Round(time.Millisecond), res.Reconnect.AtGoal, cfg.ReconnectGoal)
	}
	// The resent events and first heartbeats of the new sessions.
	_ = sleep(ctx, min(2*time.Second, cfg.Settle))
	res.AfterReconnect, _ = sampleProc(r.cp.pid())
	return nil
}

// restartControlPlane stops the control plane with SIGKILL (SIGTERM when
// asked, or when profiling, so the profiles are written) and starts a new
// one where the agents dial. It returns when the signal was sent.
func (r *runner) restartControlPlane(ctx context.Context) (kill time.Time, err error) {
	res := r.res
	sig := syscall.SIGKILL
	if r.cfg.RestartSignal == "term" || r.cfg.Profile != "" {
		sig, res.RestartSignal = syscall.SIGTERM, "term"
	}
	kill = time.Now()
	if err := r.cp.stop(sig); err != nil {
		// A graceful stop that overran was ended with SIGKILL: the
		// restart goes on, and the report says so.
		res.StopErr = err.Error()
		r.say("%v", err)
	}
	if r.cp, err = r.launcher.start(ctx); err != nil {
		return kill, err
	}
	res.Restarted, res.Downtime = true, time.Since(kill)
	if r.cfg.Profile != "" {
		r.cp.signal(syscall.SIGUSR1) // CPU profile of the reconnect storm
	}
	r.say("control plane restarted (pid %d) %v after SIG%s", r.cp.pid(), res.Downtime.Round(time.Millisecond), strings.ToUpper(res.RestartSignal))
	return kill, nil
}

// loadStats collects the workers' final stats and the load processes'
// memory.
func (r *runner) loadStats(ctx context.Context) error {
	res := r.res
	var err error
	if res.Load, err = allStats(ctx, r.workers, cmdStats); err != nil {
		return err
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
	r.say("load processes: RSS %s in total; %d agents stopped with an error", mib(res.LoadRSS), failed)
	return nil
}
