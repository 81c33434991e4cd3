package load

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// goalRecover is the goal for a killed replica's PBXs.
const goalRecover = 30 * time.Second

// loadAvg is /proc/loadavg's three averages ("1.20 0.95 0.80"): the
// machine is shared, so each figure says how busy it was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// writeCluster writes the rows of a run with several replicas.
func (r *Result) writeCluster(w io.Writer, row func(what, result, goal string), ms func(time.Duration) string, mark func(bool) string) {
	c, cr := r.Config, r.Cluster
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	for i, rp := range cr.Replicas {
		row(fmt.Sprintf("Replica %d, all connected, idle %s", i, sec(c.Settle)),
			fmt.Sprintf("%s PBXs; RSS %s (peak %s); CPU %.1f %% of one core idle, %.0f %% during the calls (RSS then %s)",
				thousands(rp.Agents), mib(rp.Idle.RSS), mib(rp.Idle.PeakRSS), rp.IdleCPU, rp.CallsCPU, mib(rp.AfterCall.RSS)),
			"≤ 1 GiB: "+mark(rp.Idle.PeakRSS <= goalRSS))
	}
	for i, rp := range cr.Replicas {
		if rp.Fleet.Count == 0 {
			continue
		}
		row(fmt.Sprintf("`GET /v1/fleet?limit=%d` from replica %d (%d KiB, %d sequential)", fullFleetLimit(r.Agents), i, r.FleetBytes>>10, rp.Fleet.Count),
			fleetCell(rp.Fleet, ms), "< 200 ms: "+mark(rp.Fleet.P99 < goalFleet))
	}
	if o := r.Originate; o.Target > 0 {
		row(fmt.Sprintf("`POST /v1/calls` at %s/s for %s, each to a random replica", thousands(c.OriginateRate), sec(c.OriginateDuration)),
			fmt.Sprintf("p50 %s, p99 %s, max %s; %.0f/s achieved; %s%s; %d not sent", ms(o.Latency.P50), ms(o.Latency.P99), ms(o.Latency.Max),
				o.Achieved, o.Latency.codesString(), errorsSuffix(o.Errors), o.Missed), "reported")
	}
	if cr.KilledIndex >= 0 {
		res := "not all back: " + cr.RecoverErr
		if cr.Recovered > 0 {
			res = sec(cr.Recovered)
		}
		row(fmt.Sprintf("SIGKILL of replica %d (holding %s PBXs): until every one is connected to a survivor and answers a request through one",
			cr.KilledIndex, thousands(cr.KilledAgents)), res, "≤ 30 s: "+mark(cr.Recovered > 0 && cr.Recovered <= goalRecover))
		row(describeSubs(cr.Subscribed, cr.Replicas[0].Base)+", enterprises of the killed replica's PBXs, from after=0, over the whole run",
			fmt.Sprintf("%s events; %d lost, %d duplicated", thousands(cr.EventsSeen), cr.EventsLost, cr.EventsDuplicated),
			"0 and 0: "+mark(cr.EventsSeen > 0 && cr.EventsLost == 0 && cr.EventsDuplicated == 0))
	}
	if rl := cr.Rolling; rl.Calls > 0 {
		failed := fmt.Sprintf("%d failed", rl.Failed)
		if rl.Failed > 0 {
			failed += " (" + errorsString(rl.FailedBy) + ")"
		}
		row(fmt.Sprintf("Rolling restart of the %d replicas (SIGTERM, every PBX back elsewhere, start, %s pause, next) in %s under %d calls/s, each to a random replica with an Idempotency-Key; 503/429 retried after Retry-After, refused connections at once elsewhere",
			len(cr.Replicas), sec(r.HealthyAfter), sec(rl.Took), c.RollingRate),
			fmt.Sprintf("%s calls, %s answered, %s; %s retries (%s)", thousands(rl.Calls), thousands(rl.OK), failed, thousands(rl.Retries), errorsString(rl.Retried)),
			"0 failed: "+mark(rl.Failed == 0))
	}
}
