package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

var unconfirmedDesc = prometheus.NewDesc("switchboard_agent_operations_unconfirmed_total",
	"Operations Asterisk accepted whose confirming events did not come within --confirm-timeout, or said they failed (answered not_confirmed), by op.",
	[]string{"op"}, nil)

// unconfirmedCollector reports the per-op counts at scrape time.
type unconfirmedCollector struct{ src Source }

func (c unconfirmedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- unconfirmedDesc }

func (c unconfirmedCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.src.OpsStats().Unconfirmed
	names := make([]string, 0, len(counts))
	for op := range counts {
		names = append(names, op)
	}
	slices.Sort(names)
	for _, op := range names {
		ch <- prometheus.MustNewConstMetric(unconfirmedDesc, prometheus.CounterValue, float64(counts[op]), op)
	}
}

// opsCollectors are the operations' metrics.
func opsCollectors(o Source) []prometheus.Collector {
	return []prometheus.Collector{
		unconfirmedCollector{o},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_agent_ami_dtmf_up",
			Help: "1 while the agent's second AMI session, the one PlayDTMF runs on, is logged in."}, func() float64 {
			if o.DTMFSessionUp() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_agent_attended_transfers",
			Help: "Attended transfers the agent follows now (consultations in progress)."}, func() float64 {
			return float64(o.OpsStats().Transfers)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_agent_attended_transfers_refused_total",
			Help: "Attended transfers refused because --max-attended-transfers were in progress."}, func() float64 {
			return float64(o.OpsStats().TransfersRefused)
		}),
	}
}
