package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Several AMI actions answer Success and then do nothing, or something
// else (captures 12-16, README item 22). An operation of that kind is
// confirmed by the events that must follow it: it registers what it
// expects before it sends its action (the events may arrive before the
// action's Response is read), and reports success only once they came.

// DefaultConfirmTimeout bounds the wait for the events that confirm an
// operation, after Asterisk's Response (and within the request's deadline).
// Asterisk sends them within a millisecond of the Response (captures 14,
// 15); the margin covers a busy PBX and the agent's own event queue.
const DefaultConfirmTimeout = 2 * time.Second

// ErrUnconfirmed: Asterisk accepted the action but the events that must
// follow it did not come: the operation did not happen (or not as asked).
var ErrUnconfirmed = errors.New("not confirmed")

// waiter collects the events one operation waits for; lost is closed
// when the AMI connection drops meanwhile (the events may never come).
type eventWait struct {
	match func(*ami.Message) bool
	got   chan *ami.Message
	lost  chan struct{}
	once  sync.Once
}

type eventWaits struct {
	mu   sync.Mutex
	list []*eventWait
}

// ObserveQueues hands the handler one AMI event, in the order Asterisk sent it.
// The agent's event consumer calls it for every event (after the channel
// table), so operations waiting for the events that confirm them see
// them. It never blocks.
func (h *Handler) ObserveQueues(m *ami.Message) {
	if !m.IsEvent() {
		return
	}
	h.waits.mu.Lock()
	defer h.waits.mu.Unlock()
	if m.Event() == ami.EventDisconnected {
		for _, w := range h.waits.list {
			w.once.Do(func() { close(w.lost) })
		}
		return
	}
	for _, w := range h.waits.list {
		if w.match(m) {
			select {
			case w.got <- m:
			default: // more than the operation waits for: it has enough
			}
		}
	}
	if m.Event() == "Hangup" {
		h.recordingChannelGone(m.Get("Uniqueid"))
	}
}

// expect registers a wait for n events matching match. Call it before
// sending the action, and done when finished.
func (h *Handler) expect(n int, match func(*ami.Message) bool) *eventWait {
	w := &eventWait{match: match, got: make(chan *ami.Message, n), lost: make(chan struct{})}
	h.waits.mu.Lock()
	h.waits.list = append(h.waits.list, w)
	h.waits.mu.Unlock()
	return w
}

func (h *Handler) done(w *eventWait) {
	h.waits.mu.Lock()
	defer h.waits.mu.Unlock()
	for i, x := range h.waits.list {
		if x == w {
			h.waits.list = append(h.waits.list[:i], h.waits.list[i+1:]...)
			return
		}
	}
}

// wait returns the n events w expects, or ErrUnconfirmed (with what
// was expected in words) once ConfirmTimeout passed, or ctx's error.
func (h *Handler) wait(ctx context.Context, w *eventWait, n int, op, what string) ([]*ami.Message, error) {
	t := time.NewTimer(h.cfg.ConfirmTimeout)
	defer t.Stop()
	out := make([]*ami.Message, 0, n)
	for len(out) < n {
		select {
		case m := <-w.got:
			out = append(out, m)
		case <-t.C:
			return out, h.unconfirmedErr(op, what)
		case <-w.lost:
			return out, fmt.Errorf("%s: waiting for its confirmation: %w", op, ami.ErrDisconnected)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

func (h *Handler) unconfirmedErr(op, what string) error {
	h.queueUnconfirmed.Add(1)
	h.log.Warn("operation not confirmed", "op", op, "expected", what, "within", h.cfg.ConfirmTimeout)
	return fmt.Errorf("%w: Asterisk answered Success but %s within %s: it did not happen, or not as asked, or this PBX's AMI user may not read the events that confirm it (manager.conf read=)",
		ErrUnconfirmed, what, h.cfg.ConfirmTimeout)
}

// CallCentreUnconfirmed counts operations Asterisk accepted that the events did not
// confirm (metrics).
func (h *Handler) CallCentreUnconfirmed() uint64 { return h.queueUnconfirmed.Load() }

// is reports whether header k of m equals v, as Asterisk compares names:
// without regard to case.
func is(m *ami.Message, k, v string) bool { return strings.EqualFold(m.Get(k), v) }
