package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// clusterMetrics are the collectors of several replicas working together
// (cluster.Observer); registered only on a clustered replica.
type clusterMetrics struct {
	forwarded      *prometheus.CounterVec
	forwardLatency prometheus.Histogram
	notifies       prometheus.Counter
	notifyMessages prometheus.Counter
	listenLost     prometheus.Counter
	superseded     prometheus.Counter
	resyncs        prometheus.Counter
}

// Cluster registers the cluster's collectors; live reports the number of
// live replicas. The returned value implements cluster.Observer.
func (m *Metrics) Cluster(live func() int) *ClusterObserver {
	f := promauto.With(m.reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	c := &clusterMetrics{
		forwarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_cluster_forwarded_total", Help: "Requests forwarded to the replica holding their PBX's tunnel, by result (ok, an agent error code, offline, timeout, not_here, unreachable).",
		}, []string{"result"}),
		forwardLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "switchboard_cluster_forward_duration_seconds", Help: "Round trip of forwarded requests (internal call + the holder's tunnel + agent + AMI).",
			Buckets: agentBuckets,
		}),
		notifies:       counter("switchboard_cluster_notify_statements_total", "NOTIFY statements announcing event batches stored on this replica (batched over --cluster-notify-delay)."),
		notifyMessages: counter("switchboard_cluster_notify_payloads_total", "Payloads those NOTIFY statements carried."),
		listenLost:     counter("switchboard_cluster_listen_lost_total", "Times the LISTEN connection dropped (subscribers here catch up from the store once it is back)."),
		superseded:     counter("switchboard_cluster_sessions_superseded_total", "Agent sessions this replica closed because the agent connected to another replica (the newest connection wins)."),
		resyncs:        counter("switchboard_cluster_event_resyncs_total", "Enterprises whose subscribers here were sent to the store for events whose announcement was missed."),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_cluster_replicas_live", Help: "Control-plane replicas whose heartbeat is recent (this one included); each enforces 1/N of every rate limit.",
	}, func() float64 { return float64(live()) })
	return &ClusterObserver{c: c}
}

// ClusterObserver implements cluster.Observer.
type ClusterObserver struct{ c *clusterMetrics }

func (o *ClusterObserver) Forwarded(result string, d time.Duration) {
	o.c.forwarded.WithLabelValues(result).Inc()
	o.c.forwardLatency.Observe(d.Seconds())
}
func (o *ClusterObserver) Notified(n int) { o.c.notifies.Inc(); o.c.notifyMessages.Add(float64(n)) }
func (o *ClusterObserver) ListenLost()    { o.c.listenLost.Inc() }
func (o *ClusterObserver) Superseded()    { o.c.superseded.Inc() }
func (o *ClusterObserver) Resynced(n int) { o.c.resyncs.Add(float64(n)) }
