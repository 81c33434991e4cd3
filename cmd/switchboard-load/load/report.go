package load

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
)

// Goals from the issue.
const (
	goalRSS   = 1 << 30
	goalFleet = 200 * time.Millisecond
)

// WriteMarkdown writes the result as a table ready for the README, with
// the settings and the command line that produced it.
func (r *Result) WriteMarkdown(w io.Writer) {
	c := r.Config
	row := func(what, result, goal string) { fmt.Fprintf(w, "| %s | %s | %s |\n", what, result, goal) }
	ms := func(d time.Duration) string {
		if d < 10*time.Millisecond {
			return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
		}
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	workers := fmt.Sprintf("%d worker processes", r.Workers)
	if r.Workers == 0 {
		workers = "the load process"
	}

	fmt.Fprintln(w, "| Measure | Result | Goal |")
	fmt.Fprintln(w, "|---|---|---|")
	row("Simulated PBXs", fmt.Sprintf("%s, each a real agent with its own fake Asterisk, in %s; %s enterprises with one API key each",
		thousands(r.Agents), workers, thousands(r.Enterprises)), "10,000")
	if r.Cluster != nil && r.Connect.All > 0 {
		row(fmt.Sprintf("All connected (every agent dials at once, to one of the %d replicas' URLs in random order)", len(r.Cluster.Replicas)),
			sec(r.Connect.All), "")
		r.writeCluster(w, row, ms, mark)
	} else if r.Connect.All > 0 {
		row("All connected (every agent dials at once)", fmt.Sprintf("%s (50%% %s, 90%% %s, 99%% %s)",
			sec(r.Connect.All), sec(r.Connect.Half), sec(r.Connect.P90), sec(r.Connect.P99)), "")
	} else {
		row("All connected", "not reached: "+r.ConnectErr, "")
	}
	single := r.Cluster == nil
	if single && r.Idle.Sampled {
		row(fmt.Sprintf("Control plane RSS, all connected, idle %s", sec(c.Settle)),
			fmt.Sprintf("%s (peak %s); %d fds, %d threads", mib(r.Idle.RSS), mib(r.Idle.PeakRSS), r.Idle.OpenFDs, r.Idle.Threads),
			"≤ 1 GiB: "+mark(r.Idle.PeakRSS <= goalRSS))
		row("Control plane CPU, all connected, idle", fmt.Sprintf("%.1f %% of one core (load processes %.0f %%, other processes %.0f %%; machine %.0f %% of %d cores busy)",
			r.IdleCPU, r.LoadIdleCPU, others(r.MachineIdle, r.IdleCPU, r.LoadIdleCPU), r.MachineIdle, runtime.NumCPU()), "")
	}
	if single && r.FleetFull.Count > 0 {
		row(fmt.Sprintf("`GET /v1/fleet?limit=%d` (%d KiB, %d sequential)", fullFleetLimit(r.Agents), r.FleetBytes>>10, r.FleetFull.Count),
			fleetCell(r.FleetFull, ms), "< 200 ms: "+mark(r.FleetFull.P99 < goalFleet))
		if r.Agents > api.DefaultFleetPageSize {
			row(fmt.Sprintf("`GET /v1/fleet` (default page: %s agents and the totals)", thousands(api.DefaultFleetPageSize)),
				fmt.Sprintf("p50 %s, p99 %s", ms(r.FleetDefault.P50), ms(r.FleetDefault.P99)), "< 200 ms: "+mark(r.FleetDefault.P99 < goalFleet))
		}
		row("`GET /v1/fleet?connected=false` (filtered)",
			fmt.Sprintf("p50 %s, p99 %s", ms(r.FleetPage.P50), ms(r.FleetPage.P99)), "< 200 ms: "+mark(r.FleetPage.P99 < goalFleet))
	}
	if o := r.Originate; single && o.Target > 0 {
		row(fmt.Sprintf("`POST /v1/calls` at %s/s for %s, round robin over every PBX", thousands(c.OriginateRate), sec(c.OriginateDuration)),
			fmt.Sprintf("p50 %s, p99 %s, max %s; %.0f/s achieved; %s%s; %d not sent (%d in flight)",
				ms(o.Latency.P50), ms(o.Latency.P99), ms(o.Latency.Max), o.Achieved, o.Latency.codesString(), errorsSuffix(o.Errors), o.Missed, c.MaxInFlight),
			"p50/p99 reported")
		row("Control plane during the calls", fmt.Sprintf("CPU %.0f %% of one core; RSS %s (peak %s); %s call events stored (%.0f/s); load processes %.0f %%, other processes %.0f %% of one core; machine %.0f %% busy",
			r.OriginateCPU, mib(r.AfterCalls.RSS), mib(r.AfterCalls.PeakRSS), thousands(int(r.EventsStored)), r.EventsPerSec, r.LoadCPU,
			others(r.MachineBusy, r.OriginateCPU, r.LoadCPU), r.MachineBusy),
			"≤ 1 GiB: "+mark(r.AfterCalls.PeakRSS <= goalRSS))
	}
	if single && r.Restarted {
		res := "not all back: " + r.ReconnectErr
		if r.Reconnect.All > 0 {
			res = fmt.Sprintf("%s (50%% %s, 90%% %s, 99%% %s); the new process answered after %s",
				sec(r.Reconnect.All), sec(r.Reconnect.Half), sec(r.Reconnect.P90), sec(r.Reconnect.P99), sec(r.Downtime))
		}
		if r.StopErr != "" {
			res += "; " + r.StopErr
		}
		row(fmt.Sprintf("All reconnected after SIG%s of the control plane and a restart", strings.ToUpper(r.RestartSignal)),
			res, fmt.Sprintf("≤ %s: %s (%s back by then)", sec(c.ReconnectGoal), mark(r.Reconnect.All > 0 && r.Reconnect.All <= c.ReconnectGoal), thousands(r.Reconnect.AtGoal)))
		if r.AfterReconnect.Sampled {
			row("Control plane RSS after the reconnect", mib(r.AfterReconnect.RSS)+" (peak "+mib(r.AfterReconnect.PeakRSS)+")",
				"≤ 1 GiB: "+mark(r.AfterReconnect.PeakRSS <= goalRSS))
		}
	}
	if r.LoadRSS > 0 {
		row("Load processes (agents + fakes + generator)", fmt.Sprintf("RSS %s, %.0f KiB per simulated PBX", mib(r.LoadRSS), float64(r.LoadRSS)/1024/float64(r.Agents)), "")
	}
	fmt.Fprintln(w)
	engine := "SQLite"
	if strings.HasPrefix(c.DB, "postgres") {
		engine = "PostgreSQL"
	}
	fmt.Fprintf(w, "Machine: %s; load average at the end %s (the machine is shared). Control plane: `%s` (%s store), a separate process measured from /proc.\n",
		machine(), loadAvg(), strings.Join(shortArgv(r.ControlArgv), " "), engine)
	fmt.Fprintf(w, "Agents: reconnect backoff %v–%v (the agent's defaults unless set), reset after a session of %v (sessions were %s old at the restart); "+
		"AMI subscription buffer %d and pending-event bound %d instead of the agent's 8192 and 10,000, which are allocated or kept per agent "+
		"and would cost the simulation gigabytes; direct calls on the fakes %.0f/s, %s each.\n",
		r.ReconnectMinMax[0], r.ReconnectMinMax[1], r.HealthyAfter, sec(r.SessionAge), c.SubscriptionBuffer, c.MaxPendingEvents, c.CallRate, sec(c.CallHold))
	if c.CommandLine != "" {
		fmt.Fprintf(w, "\nCommand:\n\n    %s\n", c.CommandLine)
	}
}

// others is the CPU (% of one core) the rest of the machine used: what is
// left of the machine's busy share after the control plane and the load.
func others(machineBusy, cp, load float64) float64 {
	return max(0, machineBusy*float64(runtime.NumCPU())-cp-load)
}

func errorsSuffix(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + errorsString(m) + ")"
}

// shortArgv drops the run's temp paths from the control plane's command.
func shortArgv(argv []string) []string {
	out := make([]string, 0, len(argv))
	for i, a := range argv {
		switch {
		case i == 0:
			out = append(out, "switchboard")
			if strings.HasSuffix(a, "switchboard-load") {
				out[0] = "switchboard-load"
			}
		case strings.HasPrefix(a, "sqlite:"):
			out = append(out, "sqlite:…/switchboard.db")
		case strings.HasPrefix(a, "postgres"):
			out = append(out, "postgres://…")
		case strings.Contains(a, "/"):
			out = append(out, "…/"+a[strings.LastIndexByte(a, '/')+1:])
		default:
			out = append(out, a)
		}
	}
	return out
}

// thousands formats 10000 as 10,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

// fleetCell reports the all-rows fleet query: its percentiles, its
// slowest and its first (the one that encodes every row; with 20 samples
// or fewer the p99 is the slowest, often that one).
func fleetCell(l Latencies, ms func(time.Duration) string) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s; the first %s", ms(l.P50), ms(l.P99), ms(l.Max), ms(l.First))
}
