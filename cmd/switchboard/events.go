package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// eventsFlags are the limits of the event stream, webhooks and call
// history, all named and documented in the README.
type eventsFlags struct {
	subscriberBuffer     int
	maxSubscribers       int
	maxSubscribersPerEnt int
	maxReplaysPerEnt     int
	allowedOrigins       string
	eventRetention       time.Duration
	callRetention        time.Duration
	deliveryRetention    time.Duration
	webhookTimeout       time.Duration
	webhookConcurrency   int
	webhookMaxAttempts   int
	webhookMaxAge        time.Duration
	webhookRetryInitial  time.Duration
	webhookRetryMax      time.Duration
	webhookAllowPrivate  bool
}

func (f *eventsFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.subscriberBuffer, "event-subscriber-buffer", events.DefaultSubscriberBuffer, "events queued for one GET /v1/events WebSocket client; past it the client is closed as slow (1008) and resumes with after=")
	fs.IntVar(&f.maxSubscribers, "max-event-subscribers", events.DefaultMaxSubscribers, "WebSocket event clients of this process (503 past it)")
	fs.IntVar(&f.maxSubscribersPerEnt, "max-event-subscribers-per-enterprise", events.DefaultMaxSubscribersPerEnterprise, "WebSocket event clients of one enterprise (503 past it)")
	fs.IntVar(&f.maxReplaysPerEnt, "max-event-replays-per-enterprise", events.DefaultMaxReplaysPerEnterprise, "event replays (streams catching up from after=, polling pages) one enterprise reads at once; more wait their turn")
	fs.StringVar(&f.allowedOrigins, "event-allowed-origins", "", "comma-separated browser origins (host patterns, e.g. crm.example.com) allowed to open the event WebSocket besides the API's own host")
	fs.DurationVar(&f.eventRetention, "event-retention", events.DefaultEventRetention, "how long events are kept for resume (after=) and polling")
	fs.DurationVar(&f.callRetention, "call-retention", events.DefaultCallRetention, "how long call history (GET /v1/calls) is kept")
	fs.DurationVar(&f.deliveryRetention, "webhook-delivery-retention", events.DefaultDeliveryRetention, "how long finished webhook deliveries and their attempts are kept")
	fs.DurationVar(&f.webhookTimeout, "webhook-timeout", events.DefaultAttemptTimeout, "bound on one webhook POST, response included")
	fs.IntVar(&f.webhookConcurrency, "webhook-concurrency", events.DefaultDeliveryConcurrency, "webhook POSTs in flight at once in this process")
	fs.IntVar(&f.webhookMaxAttempts, "webhook-max-attempts", events.DefaultMaxAttempts, "attempts before a webhook delivery is marked failed")
	fs.DurationVar(&f.webhookMaxAge, "webhook-max-age", events.DefaultMaxDeliveryAge, "no retry starts this long after the event (must be shorter than --event-retention)")
	fs.DurationVar(&f.webhookRetryInitial, "webhook-retry-initial", events.DefaultRetryInitial, "wait after the first failed attempt; it doubles per attempt (±20% jitter)")
	fs.DurationVar(&f.webhookRetryMax, "webhook-retry-max", events.DefaultRetryMax, "longest wait between two attempts")
	fs.BoolVar(&f.webhookAllowPrivate, "webhook-allow-private-targets", false, "let webhook URLs point at loopback and private addresses (off: an API client could reach the control plane's own network)")
}

// eventsConfig builds the events service's configuration from the flags.
func eventsConfig(f eventsFlags) (events.Config, error) {
	cfg := events.Config{
		SubscriberBuffer:            f.subscriberBuffer,
		MaxSubscribers:              f.maxSubscribers,
		MaxSubscribersPerEnterprise: f.maxSubscribersPerEnt,
		MaxReplaysPerEnterprise:     f.maxReplaysPerEnt,
		EventRetention:              f.eventRetention,
		CallRetention:               f.callRetention,
		DeliveryRetention:           f.deliveryRetention,
		AttemptTimeout:              f.webhookTimeout,
		DeliveryConcurrency:         f.webhookConcurrency,
		MaxAttempts:                 f.webhookMaxAttempts,
		MaxDeliveryAge:              f.webhookMaxAge,
		RetryInitial:                f.webhookRetryInitial,
		RetryMax:                    f.webhookRetryMax,
		AllowPrivateTargets:         f.webhookAllowPrivate,
	}
	for _, o := range strings.Split(f.allowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	// Zero would mean "default" to the library; on the command line it is
	// a mistake, so say so rather than silently using the default.
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"--event-subscriber-buffer", f.subscriberBuffer <= 0},
		{"--max-event-subscribers", f.maxSubscribers <= 0},
		{"--max-event-subscribers-per-enterprise", f.maxSubscribersPerEnt <= 0},
		{"--max-event-replays-per-enterprise", f.maxReplaysPerEnt <= 0},
		{"--event-retention", f.eventRetention <= 0},
		{"--call-retention", f.callRetention <= 0},
		{"--webhook-delivery-retention", f.deliveryRetention <= 0},
		{"--webhook-timeout", f.webhookTimeout <= 0},
		{"--webhook-concurrency", f.webhookConcurrency <= 0},
		{"--webhook-max-attempts", f.webhookMaxAttempts <= 0},
		{"--webhook-max-age", f.webhookMaxAge <= 0},
		{"--webhook-retry-initial", f.webhookRetryInitial <= 0},
		{"--webhook-retry-max", f.webhookRetryMax <= 0},
	} {
		if v.bad {
			return cfg, usagef("%s must be positive", v.name)
		}
	}
	if f.webhookMaxAge >= f.eventRetention {
		return cfg, usagef("--webhook-max-age %v must be shorter than --event-retention %v: a delivery still retrying needs its event", f.webhookMaxAge, f.eventRetention)
	}
	if f.webhookRetryInitial > f.webhookRetryMax {
		return cfg, usagef("--webhook-retry-initial %v is longer than --webhook-retry-max %v", f.webhookRetryInitial, f.webhookRetryMax)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}
