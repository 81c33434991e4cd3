package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-pbx/switchboard/agent/ops"
)

// CallControlSource is what the call-control metrics read; *agent.Agent
// provides it. A Source without it gets none of them.
type CallControlSource interface {
	OpsStats() ops.Stats
	DTMFSessionUp() bool
}

var unconfirmedDesc = prometheus.NewDesc("switchboard_agent_call_control_unconfirmed_total",
	"Call-control operations Asterisk accepted whose confirming events did not come within --call-confirm-timeout (answered not_confirmed), by op.",
	[]string{"op"}, nil)

// unconfirmedCollector reports the per-op counts at scrape time.
type unconfirmedCollector struct{ src CallControlSource }

func (c unconfirmedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- unconfirmedDesc }

func (c unconfirmedCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.src.OpsStats().Unconfirmed
	ops := make([]string, 0, len(counts))
	for op := range counts {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		ch <- prometheus.MustNewConstMetric(unconfirmedDesc, prometheus.CounterValue, float64(counts[op]), op)
	}
}

func callControlCollectors(src Source) []prometheus.Collector {
	cc, ok := src.(CallControlSource)
	if !ok {
		return nil
	}
	return []prometheus.Collector{
		unconfirmedCollector{cc},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_agent_ami_dtmf_up",
			Help: "1 while the agent's second AMI session, the one PlayDTMF runs on, is logged in."}, func() float64 {
			if cc.DTMFSessionUp() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_agent_attended_transfers",
			Help: "Attended transfers the agent follows now (consultations in progress)."}, func() float64 {
			return float64(cc.OpsStats().Transfers)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_agent_attended_transfers_refused_total",
			Help: "Attended transfers refused because --max-attended-transfers were in progress."}, func() float64 {
			return float64(cc.OpsStats().TransfersRefused)
		}),
	}
}
