package events

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Service owns how stored events leave the control plane: the broker that
// fans them out to live subscribers, the WebSocket stream and polling
// pages (Stream, Page), webhook delivery and retention. It serves no HTTP
// routes itself: the api package authenticates, limits and audits every
// request and calls in here. Build it with New; Run runs its workers.
type Service struct {
	cfg     Config
	log     *slog.Logger
	broker  Broker
	client  *http.Client
	wake    chan struct{} // nudges the delivery worker
	replays *replaySlots
	running atomic.Bool
}

// New validates cfg and fills defaults; Store is required. It starts
// nothing.
func New(cfg Config) (*Service, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("events: Store is required")
	}
	s := &Service{cfg: cfg, wake: make(chan struct{}, 1), broker: cfg.Broker, replays: newReplaySlots(cfg.MaxReplaysPerEnterprise)}
	if s.broker == nil {
		s.broker = NewHub(cfg.MaxSubscribers, cfg.MaxSubscribersPerEnterprise)
	}
	s.client = newWebhookClient(cfg)
	s.log = cfg.Logger.With("component", "events")
	return s, nil
}

// Broker is the service's broker (for metrics and tests).
func (s *Service) Broker() Broker { return s.broker }

// OnEvents is the gateway's hook: the batch is stored (with its history and
// outbox rows), so it only wakes subscribers and the delivery worker. It
// never blocks.
func (s *Service) OnEvents(agent store.Agent, stored []store.StoredEvent) {
	if len(stored) == 0 {
		return
	}
	b := Batch{EnterpriseID: agent.EnterpriseID, First: stored[0].Seq, Last: stored[len(stored)-1].Seq, Items: make([]Item, 0, len(stored))}
	for _, se := range stored {
		data, err := EncodeEvent(se)
		if err != nil {
			s.log.Error("encode event", "seq", se.Seq, "err", err)
			continue // subscribers read it back from the store (hole fill)
		}
		b.Items = append(b.Items, Item{Seq: se.Seq, AgentID: se.AgentID, Type: se.Event.Type, JSON: data})
	}
	s.broker.Publish(b)
	s.nudge()
}

func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// CheckWebhookURL says whether url may receive webhooks: http(s), a host,
// no credentials or fragment and, unless Config.AllowPrivateTargets, only
// public addresses. The error is an *InputError.
func (s *Service) CheckWebhookURL(ctx context.Context, url string) error {
	return checkWebhookURL(ctx, url, s.cfg.AllowPrivateTargets, net.DefaultResolver)
}

// Run runs the webhook delivery worker and the retention pruner until ctx
// ends, then waits for deliveries in flight. Call it once.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("events: Run called twice")
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return s.deliverLoop(ctx) })
	eg.Go(func() error { return s.pruneLoop(ctx) })
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// pruneLoop applies retention now and every PruneInterval.
func (s *Service) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		s.Prune(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Prune deletes what retention no longer keeps. Failures are logged and
// retried at the next round.
func (s *Service) Prune(ctx context.Context) {
	now := s.cfg.Now()
	st := s.cfg.Store
	for _, p := range []struct {
		what string
		fn   func(context.Context, time.Time) (int64, error)
		keep time.Duration
	}{
		{"events", st.PruneEvents, s.cfg.EventRetention},
		{"calls", st.PruneCalls, s.cfg.CallRetention},
		{"webhook deliveries", st.PruneDeliveries, s.cfg.DeliveryRetention},
	} {
		n, err := p.fn(ctx, now.Add(-p.keep))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("retention", "what", p.what, "err", err)
		case n > 0:
			s.log.Info("retention pruned", "what", p.what, "rows", n, "older_than", p.keep)
		}
	}
}

// storeCtx bounds one store call of a stream or page.
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.StoreTimeout)
}
