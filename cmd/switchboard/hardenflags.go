package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
)

// hardenFlags are the limits that keep one agent or one tenant from
// exhausting the control plane (README "Limits and abuse"): what an agent
// may send and open, what the gateway does while the store fails, and how
// webhook deliveries are shared between tenants.
type hardenFlags struct {
	eventRate                      float64
	eventBurst                     int
	storeRetryMin, storeRetryMax   time.Duration
	streamBacklog                  int
	maxControlFrame, maxHelloField int
	webhookPerWebhook              int
	webhookPerEnterprise           int
	webhookSuspendAfter            int
}

func (f *hardenFlags) register(fs *pflag.FlagSet) {
	fs.Float64Var(&f.eventRate, "agent-event-rate", gateway.DefaultEventRate, "events per second one PBX may have stored; past it (and its burst) the gateway holds its ack and reads no more from it: the agent waits and keeps its events, nothing is dropped (negative: no limit)")
	fs.IntVar(&f.eventBurst, "agent-event-burst", gateway.DefaultEventBurst, "burst of --agent-event-rate (a PBX's backlog resent after an outage)")
	fs.DurationVar(&f.storeRetryMin, "agent-store-retry-min", gateway.DefaultStoreRetryMin, "first wait before storing again an event batch the store refused (disk full, database down); the PBX's session stays up and the batch unacknowledged")
	fs.DurationVar(&f.storeRetryMax, "agent-store-retry-max", gateway.DefaultStoreRetryMax, "longest wait between attempts to store a refused event batch (the wait doubles from --agent-store-retry-min)")
	fs.IntVar(&f.streamBacklog, "agent-stream-backlog", gateway.DefaultStreamBacklog, "streams a PBX may have opened and not yet accepted (more are reset); each may hold 256 KiB")
	fs.IntVar(&f.maxControlFrame, "agent-max-control-frame-bytes", gateway.DefaultMaxControlFrameBytes, "largest hello or status message from a PBX (a larger one ends its session)")
	fs.IntVar(&f.maxHelloField, "agent-max-hello-field-bytes", gateway.DefaultMaxHelloFieldBytes, "longest text field of a PBX's hello or status (hostname, versions, AMI error); longer ones are cut and logged by length")
	fs.IntVar(&f.webhookPerWebhook, "webhook-concurrency-per-webhook", events.DefaultMaxDeliveriesPerWebhook, "webhook POSTs in flight at once for one webhook, across replicas: a slow receiver holds no more slots than this")
	fs.IntVar(&f.webhookPerEnterprise, "webhook-concurrency-per-enterprise", events.DefaultMaxDeliveriesPerEnterprise, "webhook POSTs in flight at once for one enterprise's webhooks, across replicas")
	fs.IntVar(&f.webhookSuspendAfter, "webhook-suspend-after", events.DefaultSuspendAfter, "failed attempts in a row after which a webhook is suspended (its deliveries wait, holding no slot) for the retry backoff, then probed one delivery at a time")
}

// apply sets the agent limits (cfg.Gateway.Limits) and the webhook
// fairness limits (cfg.Events) of the control plane's Config; call it
// after the events config is built. Zero means "default" to the
// libraries; on the command line it is a mistake.
func (f hardenFlags) apply(cfg *controlplane.Config) error {
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"--agent-event-rate (negative: no limit)", f.eventRate == 0},
		{"--agent-event-burst", f.eventBurst <= 0},
		{"--agent-store-retry-min", f.storeRetryMin <= 0},
		{"--agent-store-retry-max", f.storeRetryMax <= 0},
		{"--agent-stream-backlog", f.streamBacklog <= 0},
		{"--agent-max-control-frame-bytes", f.maxControlFrame <= 0},
		{"--agent-max-hello-field-bytes", f.maxHelloField <= 0},
		{"--webhook-concurrency-per-webhook", f.webhookPerWebhook <= 0},
		{"--webhook-concurrency-per-enterprise", f.webhookPerEnterprise <= 0},
		{"--webhook-suspend-after", f.webhookSuspendAfter <= 0},
	} {
		if v.bad {
			return usagef("%s must not be zero or negative", v.name)
		}
	}
	cfg.Gateway.Limits = gateway.Limits{
		EventRate: f.eventRate, EventBurst: f.eventBurst,
		StoreRetryMin: f.storeRetryMin, StoreRetryMax: f.storeRetryMax,
		StreamBacklog: f.streamBacklog, MaxControlFrameBytes: f.maxControlFrame, MaxHelloFieldBytes: f.maxHelloField,
	}
	if err := cfg.Gateway.Limits.Validate(); err != nil {
		return usagef("%v", err)
	}
	cfg.Events.MaxDeliveriesPerWebhook = f.webhookPerWebhook
	cfg.Events.MaxDeliveriesPerEnterprise = f.webhookPerEnterprise
	cfg.Events.SuspendAfter = f.webhookSuspendAfter
	return nil
}
