package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/agent/calls"
	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/agent/outbox"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// resyncRetry is how long the consumer waits before retrying a
// CoreShowChannels that failed on a live AMI session.
const resyncRetry = time.Second

// Agent is one switchboard-agent. Run it once.
type Agent struct {
	cfg     Config
	servers *servers
	log     *slog.Logger // component=agent
	tlog    *slog.Logger // component=tunnel

	ami     *ami.Client
	dtmf    *ami.Client // the second AMI session, for PlayDTMF only
	table   *channels.Table
	outbox  *outbox.Outbox
	handler *ops.Handler

	// The tracker is not safe for concurrent use: the AMI consumer feeds
	// it while request handlers give it originate hints.
	trackMu sync.Mutex
	tracker *calls.Tracker

	asteriskVersion atomic.Pointer[string]
	// statusKick wakes the session's status loop on an AMI state change.
	statusKick chan struct{}
	running    atomic.Bool
	// protocol is the version of the last tunnel; only tunnelLoop's
	// goroutine touches it.
	protocol int

	framesRefused atomic.Uint64 // see StreamStats
	ackWaits      atomic.Uint64
}

// New validates cfg, fills defaults and builds the agent. It does not
// connect to anything; Run does.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	var urls []string
	for _, u := range append([]string{cfg.Server}, cfg.MoreServers...) {
		cu, _ := connectURL(u) // checked by Validate
		urls = append(urls, cu)
	}
	if cfg.RootCAs == nil && cfg.CAFile != "" {
		pool, err := tunnel.LoadCAFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	client, err := ami.New(cfg.AMI)
	if err != nil {
		return nil, fmt.Errorf("ami client: %w", err)
	}
	dtmf, err := ami.New(dtmfSession(cfg.AMI))
	if err != nil {
		return nil, fmt.Errorf("ami client for DTMF: %w", err)
	}
	ob, err := outbox.New(outbox.Config{MaxPending: cfg.MaxPendingEvents, MaxEventBytes: cfg.maxEventBytes(), Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:        cfg,
		servers:    newServers(urls, nil),
		log:        cfg.Logger.With("component", "agent"),
		tlog:       cfg.Logger.With("component", "tunnel"),
		ami:        client,
		dtmf:       dtmf,
		table:      channels.New(channels.Config{Now: cfg.Now}),
		outbox:     ob,
		tracker:    calls.NewTracker(calls.Config{PBX: cfg.Hostname, Context: cfg.Context, Now: cfg.Now, MaxFieldBytes: cfg.MaxEventFieldBytes}),
		statusKick: make(chan struct{}, 1),
	}
	a.handler, err = ops.New(ops.Config{
		AMI:                     ops.FromClient(client),
		Channels:                a.table,
		Context:                 cfg.Context,
		Limits:                  cfg.Limits,
		MaxConcurrentOriginates: cfg.MaxConcurrentOriginates,
		Ops:                     cfg.Ops,
		Status:                  a.Status,
		ExpectOriginate:         func(callID, from, to string) { a.track(func(t *calls.Tracker) { t.ExpectOriginate(callID, from, to) }) },
		ExpectMonitor:           func(spyCallID, target string) { a.track(func(t *calls.Tracker) { t.ExpectMonitor(spyCallID, target) }) },
		ExpectHangup:            func(uniqueid, by string) { a.track(func(t *calls.Tracker) { t.ExpectHangup(uniqueid, by) }) },
		ConfirmTimeout:          cfg.ConfirmTimeout,
		DTMF:                    ops.FromClient(dtmf),
		CallControl:             cfg.CallControl,
		ExpectTransfer: func(uniqueid, by, mode, to string) {
			a.track(func(t *calls.Tracker) { t.ExpectTransfer(uniqueid, by, mode, to) })
		},
		ExpectPark: func(uniqueid, by string) { a.track(func(t *calls.Tracker) { t.ExpectPark(uniqueid, by) }) },
		ExpectPickup: func(pickupCallID, parkedCallID, by string) {
			a.track(func(t *calls.Tracker) { t.ExpectPickup(pickupCallID, parkedCallID, by) })
		},
		Logger: a.log,
		Now:    cfg.Now,

		Queues:     ops.QueueConfig{MemberInterface: cfg.QueueMemberInterface},
		Recordings: a.recordingConfig(),
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// track runs f on the tracker under trackMu: the operations' hints come
// from request handlers, concurrently with the AMI consumer.
func (a *Agent) track(f func(*calls.Tracker)) {
	a.trackMu.Lock()
	defer a.trackMu.Unlock()
	f(a.tracker)
}

// ErrAlreadyRunning is returned by a second Run.
var ErrAlreadyRunning = errors.New("agent is already running")

// Run connects to AMI and to the control plane and serves until ctx ends;
// each connection has its own reconnect loop, so one being down never
// stops the other. It returns nil after ctx ends, having stopped and
// waited for everything it started.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	a.log.Info("agent starting", "config", a.cfg)
	// Subscribe before the client runs, so the first SwitchboardConnected
	// (which triggers the first resync) cannot be missed.
	sub := a.ami.Subscribe(a.cfg.SubscriptionBuffer)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.ami.Run(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("ami: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.dtmf.Run(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("ami (DTMF session): %w", err)
		}
		return nil
	})
	g.Go(func() error { return a.consume(gctx, sub) })
	g.Go(func() error { return a.tunnelLoop(gctx) })
	err := g.Wait()
	sub.Close()
	a.handler.Close()
	_ = a.ami.Close()
	_ = a.dtmf.Close()
	a.log.Info("agent stopped")
	return err
}

// consume is the only reader of AMI events: it feeds the channel table,
// the tracker and the handler's Observe in the order Asterisk sent them,
// and the tracker's events to the outbox.
func (a *Agent) consume(ctx context.Context, sub *ami.Subscription) error {
	var retry <-chan time.Time
	overflowing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry:
			retry = a.resync(ctx)
		case m, ok := <-sub.C():
			if !ok {
				return nil
			}
			a.table.Apply(m)
			a.trackMu.Lock()
			evs := a.tracker.Handle(m)
			a.trackMu.Unlock()
			overflowing = a.enqueue(evs, overflowing)
			// Last: an operation this event confirms answers once the
			// table has the event and the events it makes are queued.
			a.handler.Observe(m)
			switch m.Event() {
			case ami.EventConnected:
				a.onConnected(ctx, m)
				retry = a.resync(ctx)
			case ami.EventDisconnected:
				retry = nil
				a.log.Warn("AMI disconnected", "err", m.Get("Error"))
				a.kickStatus()
			case ami.EventDropped:
				// Events were lost to a full buffer: the table and the
				// tracker may be wrong. Asterisk's own list is the truth.
				a.log.Warn("AMI events dropped, resyncing", "count", m.Get("Count"))
				retry = a.resync(ctx)
			}
		}
	}
}

// enqueue appends tracker events to the outbox, logging once when the
// outbox starts refusing (the gap event reports the count).
func (a *Agent) enqueue(evs []protocol.Event, overflowing bool) bool {
	for _, ev := range evs {
		if _, ok := a.outbox.Append(ev); !ok {
			if !overflowing {
				a.log.Warn("event buffer full: events are being lost until the control plane catches up",
					"max_pending", a.cfg.MaxPendingEvents)
			}
			overflowing = true
		} else {
			overflowing = false
		}
	}
	return overflowing
}

func (a *Agent) onConnected(ctx context.Context, m *ami.Message) {
	// CoreSettings carries the Asterisk version (the banner only has the
	// AMI version). A failure only leaves the version unknown.
	actx, cancel := context.WithTimeout(ctx, a.actionTimeout())
	defer cancel()
	if resp, err := a.ami.Action(actx, ami.NewAction("CoreSettings")); err == nil {
		v := resp.Get("AsteriskVersion")
		a.asteriskVersion.Store(&v)
	} else {
		a.log.Warn("could not read the Asterisk version", "err", err)
	}
	a.log.Info("AMI connected", "ami_version", m.Get("AMIVersion"), "asterisk_version", a.AsteriskVersion())
	a.kickStatus()
}

func (a *Agent) actionTimeout() time.Duration {
	if a.cfg.AMI.ActionTimeout > 0 {
		return a.cfg.AMI.ActionTimeout
	}
	return ami.DefaultActionTimeout
}

// resync rebuilds the channel table and reconciles the tracker from
// CoreShowChannels. It returns a timer to retry on failure while AMI is
// still up, or nil.
func (a *Agent) resync(ctx context.Context) <-chan time.Time {
	actx, cancel := context.WithTimeout(ctx, a.actionTimeout())
	defer cancel()
	res, err := a.ami.List(actx, ami.NewAction("CoreShowChannels"))
	if err != nil {
		if ctx.Err() != nil || !a.ami.Connected() {
			return nil
		}
		a.log.Warn("channel resync failed, retrying", "err", err, "retry_in", resyncRetry)
		return time.After(resyncRetry)
	}
	a.table.Replace(res.Items)
	a.trackMu.Lock()
	evs := a.tracker.Resync(res.Items)
	a.trackMu.Unlock()
	a.enqueue(evs, false)
	n, calls := a.table.Counts()
	a.log.Info("channel table resynced", "channels", n, "calls", calls, "events", len(evs))
	a.kickStatus()
	return nil
}

func (a *Agent) kickStatus() {
	select {
	case a.statusKick <- struct{}{}:
	default:
	}
}

// AsteriskVersion is the version of the Asterisk last connected to, "" if
// unknown.
func (a *Agent) AsteriskVersion() string {
	if v := a.asteriskVersion.Load(); v != nil {
		return *v
	}
	return ""
}

// Status is the agent's current status, as sent to the control plane.
func (a *Agent) Status() protocol.Status {
	st := protocol.Status{
		AgentVersion:    a.cfg.Version,
		AsteriskVersion: a.AsteriskVersion(),
		AMI:             protocol.AMIDown,
		EventsPending:   a.outbox.Len(),
		Time:            a.cfg.Now().UTC(),
	}
	if a.ami.Connected() {
		st.AMI = protocol.AMIUp
		st.LiveChannels, st.LiveCalls = a.table.Counts()
	} else {
		st.AMIError = a.ami.Info().LastError
	}
	return st
}

// Channels is the live channel table (for `agent check` style tools and
// tests).
func (a *Agent) Channels() *channels.Table { return a.table }

// OutboxStats reports the event buffer's counters (for metrics).
func (a *Agent) OutboxStats() outbox.Stats { return a.outbox.Stats() }
