package events

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Defaults of Config. Every limit of the package is one of these.
const (
	// DefaultSubscriberBuffer is how many events may wait for one
	// WebSocket client; a client further behind is disconnected (close
	// 1008, reason "slow consumer …") and may resume with ?after=. At
	// 5,000 events/s it is 0.8 s of traffic (and four of the gateway's
	// largest store transactions): a client that cannot keep up for that
	// long is better served by resuming from the store. Encoded events are
	// shared between subscribers, so a full buffer costs about 56 bytes
	// an event.
	DefaultSubscriberBuffer = 4096
	// DefaultMaxSubscribers bounds WebSocket clients of this process;
	// DefaultMaxSubscribersPerEnterprise bounds one enterprise's. Past
	// either, GET /v1/events answers 503 unavailable.
	DefaultMaxSubscribers              = 10000
	DefaultMaxSubscribersPerEnterprise = 200
	// DefaultWriteTimeout bounds one WebSocket write (and a webhook
	// response body read).
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPingInterval: a WebSocket ping this often finds dead clients
	// on an idle stream.
	DefaultPingInterval = 30 * time.Second
	// DefaultHoleGrace: a live batch that reaches a subscriber ahead of
	// an earlier one (two PBXs' hooks racing) waits this long for it
	// before the gap is read from the store.
	DefaultHoleGrace = 50 * time.Millisecond
	// DefaultReplayPageSize is how many stored events one replay query
	// reads.
	DefaultReplayPageSize = 500
	// DefaultMaxReplaysPerEnterprise bounds the replay reads (streams
	// catching up, polling pages) one enterprise runs at once; more queue
	// behind them (switchboard_event_replays_waited_total).
	DefaultMaxReplaysPerEnterprise = 4
	// DefaultMaxCatchUpRounds: a client resuming from far back whose live
	// buffer fills while it replays is caught up from the store again, at
	// most this many times, then disconnected as slow.
	DefaultMaxCatchUpRounds = 3
	// DefaultEventPageSize / MaxEventPageSize bound GET /v1/events pages
	// (polling) and MaxTimelineEvents a call's timeline.
	DefaultEventPageSize = 100
	MaxEventPageSize     = 1000
	MaxTimelineEvents    = 1000

	// DefaultEventRetention: events older than this are pruned, and a
	// client resuming from before them is told so (stream.truncated).
	DefaultEventRetention = 7 * 24 * time.Hour
	// DefaultCallRetention: calls that started longer ago are pruned.
	DefaultCallRetention = 90 * 24 * time.Hour
	// DefaultDeliveryRetention: finished webhook deliveries (and their
	// attempts) are kept this long for GET /v1/webhooks/{id}/deliveries.
	DefaultDeliveryRetention = 7 * 24 * time.Hour
	// DefaultPruneInterval: how often retention runs.
	DefaultPruneInterval = 10 * time.Minute

	// DefaultDeliveryConcurrency bounds webhook POSTs in flight in this
	// process.
	DefaultDeliveryConcurrency = 16
	// DefaultDeliveryPollInterval: how often the worker looks for due
	// deliveries when nothing woke it (retries, other replicas' events).
	DefaultDeliveryPollInterval = time.Second
	// DefaultAttemptTimeout bounds one webhook POST, response included.
	DefaultAttemptTimeout = 10 * time.Second
	// Retries back off exponentially from DefaultRetryInitial, doubling up
	// to DefaultRetryMax, ±20% jitter, for at most DefaultMaxAttempts
	// attempts and DefaultMaxDeliveryAge after the event: 10 s, 20 s, …,
	// 1 h, then hourly — about 12 h of retries before a delivery is
	// marked failed.
	DefaultRetryInitial    = 10 * time.Second
	DefaultRetryMax        = time.Hour
	DefaultMaxAttempts     = 20
	DefaultMaxDeliveryAge  = 24 * time.Hour
	DefaultMaxResponseBody = 64 << 10 // read (and dropped) per webhook answer

	// Webhook fairness: deliveries in flight at once for one webhook and
	// for one enterprise, counted across replicas, so one tenant's slow
	// receiver cannot take every slot (half of DefaultDeliveryConcurrency:
	// lower caps cost a lone busy webhook throughput, cap ÷ its latency);
	// and a webhook whose receiver failed DefaultSuspendAfter attempts in
	// a row is suspended (its deliveries wait, holding no slot) for the
	// retry backoff, then probed one delivery at a time until one
	// succeeds.
	DefaultMaxDeliveriesPerWebhook    = 8
	DefaultMaxDeliveriesPerEnterprise = 8
	DefaultSuspendAfter               = 5

	// DefaultStoreTimeout bounds one store operation of a stream or page.
	DefaultStoreTimeout = 5 * time.Second
)

// Config configures a Service. Zero values take the defaults above; Store
// is required.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger

	// Broker fans events out to subscribers; nil: an in-process Hub (one
	// replica). A multi-replica broker (PostgreSQL LISTEN/NOTIFY) plugs in
	// here.
	Broker Broker
	// AllowedOrigins lists the browser origins (host patterns, see
	// websocket.AcceptOptions.OriginPatterns) allowed to open the
	// WebSocket besides the API's own host.
	AllowedOrigins []string

	SubscriberBuffer            int
	MaxSubscribers              int
	MaxSubscribersPerEnterprise int
	WriteTimeout                time.Duration
	PingInterval                time.Duration
	ReplayPageSize              int
	MaxReplaysPerEnterprise     int
	MaxCatchUpRounds            int
	HoleGrace                   time.Duration

	EventRetention    time.Duration
	CallRetention     time.Duration
	DeliveryRetention time.Duration
	PruneInterval     time.Duration

	DeliveryConcurrency  int
	DeliveryPollInterval time.Duration
	AttemptTimeout       time.Duration
	// DeliveryLease is how long a claimed delivery is hidden from other
	// workers; default AttemptTimeout + 30 s. A worker that dies mid-POST
	// leaves its rows due again after it.
	DeliveryLease  time.Duration
	RetryInitial   time.Duration
	RetryMax       time.Duration
	MaxAttempts    int
	MaxDeliveryAge time.Duration
	// MaxDeliveriesPerWebhook and MaxDeliveriesPerEnterprise cap the
	// deliveries in flight for one webhook and one enterprise, across
	// replicas; claims go round robin over webhooks. SuspendAfter
	// consecutive failed attempts suspend a webhook (see the defaults).
	MaxDeliveriesPerWebhook    int
	MaxDeliveriesPerEnterprise int
	SuspendAfter               int
	// AllowPrivateTargets lets webhooks point at loopback, private,
	// link-local and other internal addresses. Off by default: a webhook
	// URL is chosen by an API client and must not reach the control
	// plane's own network (SSRF). Tests and the demo turn it on.
	AllowPrivateTargets bool

	StoreTimeout time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time
	// Observer is told what the service delivers and drops (metrics);
	// nil counts nothing.
	Observer Observer
}

// Observer is told what the service does; the control plane's metrics
// implement it. Its methods must not block.
type Observer interface {
	// EventsDelivered counts events written to a sink: "websocket" (live
	// or replayed) or "webhook" (a POST answered 2xx).
	EventsDelivered(sink string, n int)
	// EventsDropped counts events a sink did not get live, by reason:
	// "slow_subscriber" (the client was disconnected with that many
	// events queued; it resumes with after= and loses none).
	EventsDropped(reason string, n int)
	// WebhookAttempt counts one delivery attempt: result "ok" or "error",
	// retry when it was not the delivery's first.
	WebhookAttempt(result string, retry bool)
	// ReplayWaited counts a replay read that queued behind its
	// enterprise's MaxReplaysPerEnterprise.
	ReplayWaited()
	// WebhookCapReached counts webhooks ("webhook") or enterprises
	// ("enterprise") a delivery claim found at their cap.
	WebhookCapReached(limit string, n int)
	// WebhookSuspended counts a webhook suspended after SuspendAfter
	// failed attempts in a row.
	WebhookSuspended()
}

type nopObserver struct{}

func (nopObserver) EventsDelivered(string, int)   {}
func (nopObserver) EventsDropped(string, int)     {}
func (nopObserver) WebhookAttempt(string, bool)   {}
func (nopObserver) ReplayWaited()                 {}
func (nopObserver) WebhookCapReached(string, int) {}
func (nopObserver) WebhookSuspended()             {}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setInt(&c.SubscriberBuffer, DefaultSubscriberBuffer)
	setInt(&c.MaxSubscribers, DefaultMaxSubscribers)
	setInt(&c.MaxSubscribersPerEnterprise, DefaultMaxSubscribersPerEnterprise)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.PingInterval, DefaultPingInterval)
	setInt(&c.ReplayPageSize, DefaultReplayPageSize)
	setInt(&c.MaxReplaysPerEnterprise, DefaultMaxReplaysPerEnterprise)
	setDur(&c.HoleGrace, DefaultHoleGrace)
	setInt(&c.MaxCatchUpRounds, DefaultMaxCatchUpRounds)
	setDur(&c.EventRetention, DefaultEventRetention)
	setDur(&c.CallRetention, DefaultCallRetention)
	setDur(&c.DeliveryRetention, DefaultDeliveryRetention)
	setDur(&c.PruneInterval, DefaultPruneInterval)
	setInt(&c.DeliveryConcurrency, DefaultDeliveryConcurrency)
	setDur(&c.DeliveryPollInterval, DefaultDeliveryPollInterval)
	setDur(&c.AttemptTimeout, DefaultAttemptTimeout)
	setDur(&c.DeliveryLease, c.AttemptTimeout+30*time.Second)
	setDur(&c.RetryInitial, DefaultRetryInitial)
	setDur(&c.RetryMax, DefaultRetryMax)
	setInt(&c.MaxAttempts, DefaultMaxAttempts)
	setDur(&c.MaxDeliveryAge, DefaultMaxDeliveryAge)
	setInt(&c.MaxDeliveriesPerWebhook, DefaultMaxDeliveriesPerWebhook)
	setInt(&c.MaxDeliveriesPerEnterprise, DefaultMaxDeliveriesPerEnterprise)
	setInt(&c.SuspendAfter, DefaultSuspendAfter)
	setDur(&c.StoreTimeout, DefaultStoreTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

// Validate says exactly what is wrong with the configuration (after
// defaults are filled; negative values are never filled).
func (c Config) Validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{
		{"SubscriberBuffer", c.SubscriberBuffer}, {"MaxSubscribers", c.MaxSubscribers},
		{"MaxSubscribersPerEnterprise", c.MaxSubscribersPerEnterprise}, {"ReplayPageSize", c.ReplayPageSize},
		{"MaxReplaysPerEnterprise", c.MaxReplaysPerEnterprise},
		{"MaxCatchUpRounds", c.MaxCatchUpRounds}, {"DeliveryConcurrency", c.DeliveryConcurrency}, {"MaxAttempts", c.MaxAttempts},
		{"MaxDeliveriesPerWebhook", c.MaxDeliveriesPerWebhook}, {"MaxDeliveriesPerEnterprise", c.MaxDeliveriesPerEnterprise},
		{"SuspendAfter", c.SuspendAfter},
	} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", v.name, v.n))
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{
		{"WriteTimeout", c.WriteTimeout}, {"PingInterval", c.PingInterval}, {"HoleGrace", c.HoleGrace}, {"EventRetention", c.EventRetention},
		{"CallRetention", c.CallRetention}, {"DeliveryRetention", c.DeliveryRetention}, {"PruneInterval", c.PruneInterval},
		{"DeliveryPollInterval", c.DeliveryPollInterval}, {"AttemptTimeout", c.AttemptTimeout}, {"DeliveryLease", c.DeliveryLease},
		{"RetryInitial", c.RetryInitial}, {"RetryMax", c.RetryMax}, {"MaxDeliveryAge", c.MaxDeliveryAge}, {"StoreTimeout", c.StoreTimeout},
	} {
		if v.d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", v.name, v.d))
		}
	}
	if c.ReplayPageSize > 5000 {
		errs = append(errs, fmt.Errorf("ReplayPageSize %d is over the store's page limit of 5000", c.ReplayPageSize))
	}
	if c.RetryMax > 0 && c.RetryInitial > c.RetryMax {
		errs = append(errs, fmt.Errorf("RetryInitial %v is longer than RetryMax %v", c.RetryInitial, c.RetryMax))
	}
	if c.DeliveryLease > 0 && c.DeliveryLease <= c.AttemptTimeout {
		errs = append(errs, fmt.Errorf("DeliveryLease %v must be longer than AttemptTimeout %v, or a slow attempt's row would be claimed twice", c.DeliveryLease, c.AttemptTimeout))
	}
	if c.EventRetention > 0 && c.MaxDeliveryAge >= c.EventRetention {
		errs = append(errs, fmt.Errorf("MaxDeliveryAge %v must be shorter than EventRetention %v: a delivery still retrying needs its event", c.MaxDeliveryAge, c.EventRetention))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("events config: %w", err)
	}
	return nil
}
