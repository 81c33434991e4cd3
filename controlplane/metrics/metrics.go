package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Metrics are the control plane's collectors on their own registry.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	agentRequests  *prometheus.CounterVec
	agentDuration  *prometheus.HistogramVec
	tunnelConnects prometheus.Counter
	tunnelCloses   prometheus.Counter
	eventsIn       prometheus.Counter
	// eventsOut counts events delivered, by sink (websocket, webhook).
	eventsOut *prometheus.CounterVec
	// eventsDropped counts events not delivered, by reason:
	// slow_subscriber (a WebSocket client disconnected with them queued;
	// it resumes from the store) and agent_buffer_overflow (gap events:
	// lost on a PBX before they were stored).
	eventsDropped *prometheus.CounterVec
	// webhookDeliveries counts delivery attempts by result (ok, error).
	webhookDeliveries *prometheus.CounterVec
	// webhookRetries counts attempts after the first.
	webhookRetries prometheus.Counter
	// replaysWaited counts event replay reads queued behind their
	// enterprise's bound.
	replaysWaited prometheus.Counter
	// rateLimited counts refused requests by scope.
	rateLimited *prometheus.CounterVec

	// Agent limits (gateway.Limits): batches that waited for the agent's
	// event rate and how long, batches the store refused (held and
	// retried) and how many are held now, and limits agents broke.
	ingestThrottled     prometheus.Counter
	ingestThrottledTime prometheus.Counter
	eventStoreFailures  prometheus.Counter
	batchesHeld         prometheus.Gauge
	agentProtocolErrors *prometheus.CounterVec

	// Webhook fairness (events.Config): webhooks and enterprises claims
	// found at their cap, and webhooks suspended after failures.
	webhookCapReached *prometheus.CounterVec
	webhookSuspended  prometheus.Counter

	// revocations counts what a revocation ended on this replica.
	revocations *prometheus.CounterVec
	// connsShed counts connections refused or closed by the listener's
	// limits and the HTTP server's timeouts, by reason.
	connsShed *prometheus.CounterVec
}

// agentBuckets are the latency buckets of requests to agents, direct or
// forwarded through another replica.
var agentBuckets = []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .5, 1, 4}

// New registers every collector; connected reports the number of agents
// connected to this replica (the fleet registry's Len).
func New(connected func() int) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// promauto registers each collector as it is made, so none can be
	// declared and forgotten.
	f := promauto.With(reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:          reg,
		httpRequests: counterVec("switchboard_http_requests_total", "HTTP requests by route pattern, method and status code.", "route", "method", "code"),
		httpDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method (agent tunnels excluded).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		agentRequests: counterVec("switchboard_agent_requests_total", "Requests sent to agents by operation and result (ok or a protocol error code).", "op", "result"),
		agentDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_agent_request_duration_seconds", Help: "Round trip of requests to agents (tunnel + agent + AMI) by operation.",
			Buckets: agentBuckets,
		}, []string{"op"}),
		tunnelConnects:      counter("switchboard_tunnel_connects_total", "Agent tunnel sessions established (reconnects included)."),
		tunnelCloses:        counter("switchboard_tunnel_disconnects_total", "Agent tunnel sessions ended."),
		eventsIn:            counter("switchboard_events_received_total", "Agent events stored (duplicates of a resend not counted)."),
		eventsOut:           counterVec("switchboard_events_delivered_total", "Events delivered to subscribers by sink.", "sink"),
		eventsDropped:       counterVec("switchboard_events_dropped_total", "Events not delivered to a subscriber, by reason.", "reason"),
		webhookDeliveries:   counterVec("switchboard_webhook_deliveries_total", "Webhook delivery attempts by result.", "result"),
		webhookRetries:      counter("switchboard_webhook_retries_total", "Webhook delivery attempts after the first."),
		replaysWaited:       counter("switchboard_event_replays_waited_total", "Event replay reads (streams catching up, polling pages) that queued behind their enterprise's --max-event-replays-per-enterprise."),
		rateLimited:         counterVec("switchboard_rate_limited_total", "Requests refused by a rate limit, by scope.", "scope"),
		ingestThrottled:     counter("switchboard_agent_events_throttled_total", "Agent event batches held back by the per-agent event rate (--agent-event-rate) before they were stored; the agent waits for its ack."),
		ingestThrottledTime: counter("switchboard_agent_events_throttled_seconds_total", "Time agent event batches waited for the per-agent event rate."),
		eventStoreFailures:  counter("switchboard_event_store_failures_total", "Attempts to store an agent event batch that the store refused (the batch is held unacknowledged and retried)."),
		batchesHeld: f.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_event_batches_held", Help: "Agent event batches held because the store refused them: above 0, storage is failing.",
		}),
		agentProtocolErrors: counterVec("switchboard_agent_limit_violations_total", "Agent messages over a limit, by reason: frame_too_large (events), control_frame_too_large (hello, status: the session ends), unexpected_stream (the session ends), field_truncated.", "reason"),
		webhookCapReached:   counterVec("switchboard_webhook_cap_reached_total", "Webhooks (cap=webhook) or enterprises (cap=enterprise) a delivery claim found at their in-flight cap: their due deliveries waited while others went ahead.", "cap"),
		webhookSuspended:    counter("switchboard_webhook_suspensions_total", "Webhooks suspended after --webhook-suspend-after failed attempts in a row (their deliveries wait, holding no slot)."),
		connsShed:           counterVec("switchboard_connections_shed_total", "Connections refused or closed by a limit, by reason: per_ip, full, evicted, reserved_path, reserve_timeout, header_timeout, idle_timeout, body_timeout, unread_body, recording_download_timeout (a recording download cut at --recording-download-timeout).", "reason"),
		revocations:         counterVec("switchboard_revocations_enforced_total", "What revoking an agent or API key ended on this replica: agent_tunnel, event_stream, ticket.", "what"),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_agents_connected", Help: "Agents connected to this control plane replica.",
	}, func() float64 { return float64(connected()) })
	return m
}

// Registry is the registry the collectors live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// AgentConnected and the methods below implement gateway.Observer.
func (m *Metrics) AgentConnected()    { m.tunnelConnects.Inc() }
func (m *Metrics) AgentDisconnected() { m.tunnelCloses.Inc() }
func (m *Metrics) EventsStored(n int) { m.eventsIn.Add(float64(n)) }

// Caller instruments requests to agents.
func (m *Metrics) Caller(next fleet.Caller) fleet.Caller { return caller{m: m, next: next} }

type caller struct {
	m    *Metrics
	next fleet.Caller
}

func (c caller) Call(ctx context.Context, agentID, op string, args, result any) error {
	start := time.Now()
	err := c.next.Call(ctx, agentID, op, args, result)
	c.m.agentDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	c.m.agentRequests.WithLabelValues(op, resultOf(err)).Inc()
	return err
}

// Fetch counts a body op like a call; its duration ends when the body
// starts (the download itself is the API's to time).
func (c caller) Fetch(ctx context.Context, agentID, op string, args, result any) (io.ReadCloser, error) {
	start := time.Now()
	body, err := c.next.Fetch(ctx, agentID, op, args, result)
	c.m.agentDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	c.m.agentRequests.WithLabelValues(op, resultOf(err)).Inc()
	return body, err
}

// resultOf maps an agent call's error to a bounded label value.
func resultOf(err error) string {
	var pe *protocol.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, fleet.ErrOffline):
		return "offline"
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.ErrCodeTimeout
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return protocol.ErrCodeInternal
	}
}

// HTTPRequest and RateLimited implement api.Observer. The route label is
// the route's pattern, so label values stay bounded; a long-lived request
// (the agent tunnel) is counted but kept out of the latency histogram.
func (m *Metrics) HTTPRequest(route, method string, code int, d time.Duration, longLived bool) {
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	if !longLived {
		m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
	}
}

// RateLimited counts a request refused by a rate limit of scope.
func (m *Metrics) RateLimited(scope string) { m.rateLimited.WithLabelValues(scope).Inc() }

// EventsDelivered and the methods below implement events.Observer.
func (m *Metrics) EventsDelivered(sink string, n int) {
	m.eventsOut.WithLabelValues(sink).Add(float64(n))
}
func (m *Metrics) EventsDropped(reason string, n int) {
	m.eventsDropped.WithLabelValues(reason).Add(float64(n))
}

// WebhookAttempt counts one webhook delivery attempt.
func (m *Metrics) WebhookAttempt(result string, retry bool) {
	m.webhookDeliveries.WithLabelValues(result).Inc()
	if retry {
		m.webhookRetries.Inc()
	}
}

// ReplayWaited counts a replay read that queued behind its enterprise's
// bound.
func (m *Metrics) ReplayWaited() { m.replaysWaited.Inc() }

// EventsLost counts events agents reported lost (gap events: their
// outbox overflowed before the control plane stored them).
func (m *Metrics) EventsLost(n uint64) {
	m.eventsDropped.WithLabelValues("agent_buffer_overflow").Add(float64(n))
}

// EventsThrottled and the methods below implement gateway.Observer's
// limits part.
func (m *Metrics) EventsThrottled(wait time.Duration) {
	m.ingestThrottled.Inc()
	m.ingestThrottledTime.Add(wait.Seconds())
}
func (m *Metrics) EventStoreFailed()     { m.eventStoreFailures.Inc() }
func (m *Metrics) BatchesHeld(delta int) { m.batchesHeld.Add(float64(delta)) }
func (m *Metrics) AgentProtocolError(reason string) {
	m.agentProtocolErrors.WithLabelValues(reason).Inc()
}

// WebhookCapReached counts webhooks or enterprises ("webhook",
// "enterprise") a claim found at their cap; WebhookSuspended counts a
// webhook suspended after failed attempts in a row.
func (m *Metrics) WebhookCapReached(limit string, n int) {
	m.webhookCapReached.WithLabelValues(limit).Add(float64(n))
}
func (m *Metrics) WebhookSuspended() { m.webhookSuspended.Inc() }

// RevocationsEnforced counts n things of a kind (agent_tunnel,
// event_stream, ticket) that a revocation ended.
func (m *Metrics) RevocationsEnforced(what string, n int) {
	if n > 0 {
		m.revocations.WithLabelValues(what).Add(float64(n))
	}
}

// ConnShed counts a connection refused or closed by a limit
// (connlimit.Observer, api.Observer).
func (m *Metrics) ConnShed(reason string) { m.connsShed.WithLabelValues(reason).Inc() }

// Connections registers the gauges of the listener's connections: open
// ones by class, read at each scrape from open, and the bound max (0:
// none).
func (m *Metrics) Connections(max int, open func() (general, reserve, tunnels int)) {
	gauge := func(class string, pick func(g, r, t int) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_connections_open", Help: "Open connections of the main listener by class: general (API clients), reserve (admitted past the general bound, for agent tunnels and health checks), tunnel (agent tunnels).",
			ConstLabels: prometheus.Labels{"class": class},
		}, func() float64 { return float64(pick(open())) })
	}
	m.reg.MustRegister(
		gauge("general", func(g, _, _ int) int { return g }),
		gauge("reserve", func(_, r, _ int) int { return r }),
		gauge("tunnel", func(_, _, t int) int { return t }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_connections_max", Help: "The main listener's bound on open connections (--max-connections; 0: none).",
		}, func() float64 { return float64(max) }),
	)
}
