package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// ErrNotConfirmed: Asterisk accepted an action but the events that must
// follow it did not come in time (several actions answer Success and do
// nothing: README item 22).
var ErrNotConfirmed = errors.New("not confirmed")

// notConfirmed says which action went unconfirmed and for how long.
func notConfirmed(action, what string, d time.Duration) error {
	return &protocol.Error{Code: protocol.ErrCodeNotConfirmed,
		Message: fmt.Sprintf("Asterisk accepted %s but sent no %s within %v; it may not have happened", action, what, d.Round(time.Millisecond))}
}

// watcher hands AMI events to the requests waiting for the ones that
// confirm their operation. The agent's AMI consumer feeds every event
// through Handler.Observe; a request registers what it waits for before
// it sends its action, so an event that arrives before the action's
// Response is not missed.
type watcher struct {
	mu      sync.Mutex
	waiting map[*waiter]struct{}
	n       atomic.Int32 // len(waiting), read without the lock by Observe
}

// waiter is one request waiting for an event that match accepts.
type waiter struct {
	match func(*ami.Message) bool
	ch    chan *ami.Message // buffered 1: Observe never blocks
}

func (w *watcher) watch(match func(*ami.Message) bool) *waiter {
	wt := &waiter{match: match, ch: make(chan *ami.Message, 1)}
	w.mu.Lock()
	if w.waiting == nil {
		w.waiting = make(map[*waiter]struct{})
	}
	w.waiting[wt] = struct{}{}
	w.n.Store(int32(len(w.waiting)))
	w.mu.Unlock()
	return wt
}

func (w *watcher) stop(wt *waiter) {
	w.mu.Lock()
	delete(w.waiting, wt)
	w.n.Store(int32(len(w.waiting)))
	w.mu.Unlock()
}

// observe delivers m to the waiters it satisfies; each gets one event and
// stops waiting. The loss of the AMI connection goes to every waiter: the
// events it waits for may never come, and it should not wait them out.
func (w *watcher) observe(m *ami.Message) {
	if w.n.Load() == 0 {
		return
	}
	lost := m.Event() == ami.EventDisconnected
	w.mu.Lock()
	defer w.mu.Unlock()
	for wt := range w.waiting {
		if lost || wt.match(m) {
			wt.ch <- m
			delete(w.waiting, wt)
		}
	}
	w.n.Store(int32(len(w.waiting)))
}

// wait returns the event wt waits for, or nil once d or ctx ran out, or
// an error wrapping ami.ErrDisconnected (ami_down: the action may or may
// not have run) if the AMI connection was lost meanwhile.
func (w *watcher) wait(ctx context.Context, wt *waiter, d time.Duration) (*ami.Message, error) {
	defer w.stop(wt)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-wt.ch:
		return delivered(m)
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case m := <-wt.ch: // delivered as time ran out
		return delivered(m)
	default:
		return nil, nil
	}
}

// delivered tells the loss of the AMI connection from a confirming event.
func delivered(m *ami.Message) (*ami.Message, error) {
	if m.Event() == ami.EventDisconnected {
		return nil, fmt.Errorf("waiting for the events that confirm the operation: %w (%s)", ami.ErrDisconnected, m.Get("Error"))
	}
	return m, nil
}

// Observe gives the handler one AMI event, in the order received; the
// agent calls it for every event (after the channel table has seen it).
// It confirms the operations waiting for that event and follows the
// attended transfers in progress. It never blocks.
func (h *Handler) Observe(m *ami.Message) {
	h.watch.observe(m)
	h.xfers.observe(m)
}

// confirmWithin is how long a request waits for its confirming event: the
// configured timeout, cut to what is left of the request's own deadline
// (less a margin to answer in).
func (h *Handler) confirmWithin(ctx context.Context) time.Duration {
	d := h.cfg.CallControl.ConfirmTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - answerMargin; left < d {
			d = max(left, 0)
		}
	}
	return d
}

// answerMargin is kept from a request's deadline to send its answer.
const answerMargin = 50 * time.Millisecond

// unconfirmed counts operations whose confirming events did not come, per
// op, for the agent's metrics.
type unconfirmed struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (u *unconfirmed) add(op string) {
	u.mu.Lock()
	if u.n == nil {
		u.n = make(map[string]uint64)
	}
	u.n[op]++
	u.mu.Unlock()
}

func (u *unconfirmed) snapshot() map[string]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]uint64, len(u.n))
	for k, v := range u.n {
		out[k] = v
	}
	return out
}
