package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/agent/outbox"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Source is what the metrics read; *agent.Agent provides it.
type Source interface {
	Status() protocol.Status
	OutboxStats() outbox.Stats
	StreamStats() agent.StreamStats
	OpsStats() ops.Stats
	DTMFSessionUp() bool
}

// Handler serves the agent's metrics in the Prometheus text format.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("switchboard_agent_ami_up", "1 while the agent has a logged-in AMI session.", func() float64 {
			if src.Status().AMI == protocol.AMIUp {
				return 1
			}
			return 0
		}),
		gauge("switchboard_agent_live_channels", "Live Asterisk channels in the agent's table.", func() float64 { return float64(src.Status().LiveChannels) }),
		gauge("switchboard_agent_live_calls", "Live calls (distinct linkedids).", func() float64 { return float64(src.Status().LiveCalls) }),
		gauge("switchboard_agent_events_pending", "Events not yet acknowledged by the control plane.", func() float64 { return float64(src.OutboxStats().Pending) }),
		counter("switchboard_agent_events_total", "Events numbered by the agent since it started.", func() float64 {
			return float64(src.OutboxStats().NextSeq - 1)
		}),
		counter("switchboard_agent_events_lost_total", "Events lost to a full buffer (each loss is also reported to the control plane as a gap event).", func() float64 {
			return float64(src.OutboxStats().Lost)
		}),
		counter("switchboard_agent_events_truncated_total", "Events sent with fields cut to --max-event-field-bytes (named in the event's truncated list).", func() float64 {
			return float64(src.OutboxStats().Truncated)
		}),
		counter("switchboard_agent_events_too_large_total", "Events replaced by a gap event naming them: over a quarter of --max-event-batch-bytes, or over the control plane's frame limit.", func() float64 {
			return float64(src.OutboxStats().TooLarge)
		}),
		counter("switchboard_agent_event_frames_refused_total", "Event frames the control plane refused as too large; their events were resent in smaller frames.", func() float64 {
			return float64(src.StreamStats().FramesRefused)
		}),
		counter("switchboard_agent_event_ack_waits_total", "Times an event frame waited because --max-events-in-flight-bytes were unacknowledged (the control plane was holding back: its ingest rate limit or a failing store).", func() float64 {
			return float64(src.StreamStats().AckWaits)
		}),
	)
	reg.MustRegister(opsCollectors(src)...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
