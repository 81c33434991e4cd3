package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Bounds of the LISTEN loop.
const (
	// listenRetryMin and listenRetryMax bound the wait between attempts
	// to open the LISTEN connection again.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
	// listenPing: a LISTEN connection silent this long is pinged, so one
	// that died without a word (a NAT, a killed server) is noticed.
	listenPing = 10 * time.Second
	// notifyTimeout bounds one NOTIFY statement.
	notifyTimeout = 5 * time.Second
)

// listenLoop keeps a LISTEN connection open and dispatches what arrives.
// Each time it (re)connects, everything since the last connection may
// have been missed: the view is read again and subscribers resynced.
func (c *Cluster) listenLoop(ctx context.Context) {
	wait := listenRetryMin
	for ctx.Err() == nil {
		l, err := c.st.Listen(ctx, Channel)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("LISTEN connection failed; retrying (events from other replicas reach subscribers here when it is back)", "retry_in", wait, "err", err)
				sleep(ctx, wait)
				wait = min(2*wait, listenRetryMax)
			}
			continue
		}
		wait = listenRetryMin
		c.refresh(ctx)
		c.broker.resync(ctx)
		err = c.receive(ctx, l)
		_ = l.Close()
		if ctx.Err() == nil {
			c.cfg.Observer.ListenLost()
			c.log.Warn("LISTEN connection lost; reconnecting", "err", err)
		}
	}
}

// receive reads notifications until the connection fails or ctx ends.
func (c *Cluster) receive(ctx context.Context, l *store.Listener) error {
	for {
		nctx, cancel := context.WithTimeout(ctx, listenPing)
		payload, err := l.Next(nctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, listenPing)
			err = l.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		msgs, err := parseMessages(payload)
		if err != nil {
			c.log.Warn("ignored a cluster notification", "err", err)
			continue
		}
		for _, m := range msgs {
			switch m.kind {
			case kindEvents:
				trace(c.cfg.ID, "heard", m.ranges)
				c.broker.remote(m.ranges)
			case kindOwner:
				c.onOwner(m)
			case kindReplica:
				rctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
				if err := c.refreshLive(rctx); err != nil && ctx.Err() == nil {
					c.log.Warn("read live replicas", "err", err)
				}
				cancel()
			}
		}
	}
}

// pendingEvents gathers the ranges of batches stored here until the next
// NOTIFY.
type pendingEvents struct {
	mu     sync.Mutex
	ranges []eventRange
	kick   chan struct{}
}

func (p *pendingEvents) add(r eventRange) {
	p.mu.Lock()
	p.ranges = append(p.ranges, r)
	first := len(p.ranges) == 1
	p.mu.Unlock()
	if first {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *pendingEvents) take() []eventRange {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.ranges
	p.ranges = nil
	return r
}

// notifyLoop announces stored batches, at most one NOTIFY per
// NotifyDelay: the first batch after a quiet spell goes at once (a fixed
// gather delay was on every event's path), the ones stored meanwhile wait
// for the next, so a burst of batches costs one NOTIFY. A failed NOTIFY
// is not retried: the other replicas' next resync finds the batches.
func (c *Cluster) notifyLoop(ctx context.Context) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			c.flushNotify(context.Background())
			return
		case <-c.pending.kick:
		}
		if wait := c.cfg.NotifyDelay - time.Since(last); wait > 0 {
			sleep(ctx, wait)
		}
		last = time.Now()
		c.flushNotify(ctx)
	}
}

func (c *Cluster) flushNotify(ctx context.Context) {
	ranges := c.pending.take()
	if len(ranges) == 0 {
		return
	}
	payloads := eventPayloads(ranges)
	trace(c.cfg.ID, "notified", ranges)
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	if err := c.st.Notify(nctx, Channel, payloads); err != nil {
		c.log.Warn("NOTIFY of stored events failed; the other replicas find them at their next resync", "payloads", len(payloads), "err", err)
		return
	}
	c.cfg.Observer.Notified(len(payloads))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
