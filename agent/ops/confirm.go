package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Several AMI actions answer Success and then do nothing, or something
// else (captures 12-16, README item 22), so every operation that changes
// the PBX's state is confirmed by the events that must follow it. It
// registers what it waits for (expect) before it sends its action, since
// those events may arrive before the action's Response is read; the
// agent's event consumer hands every event to Observe; the operation then
// waits for them (confirm) and reports success only once they came.

// DefaultConfirmTimeout bounds the wait for the events that confirm an
// operation, after Asterisk's Response; the request's own deadline cuts
// it shorter. Most follow within a millisecond (captures 14, 15); an
// attended transfer's Hold comes once the bridge has read the feature
// code Atxfer plays as DTMF, about 0.3 s later (capture 13). The wait
// costs nothing when the events come, while one too short answers
// not_confirmed for an operation that did happen, which a client may then
// repeat.
const DefaultConfirmTimeout = 3 * time.Second

// ErrNotConfirmed: Asterisk accepted the action but the events that must
// follow it did not come in time, or said it failed. The operation did
// not happen, or not as asked (or the agent cannot see the events).
var ErrNotConfirmed = errors.New("not confirmed")

// notConfirmedError is ErrNotConfirmed with what was expected, in words
// for the API's answer.
type notConfirmedError struct{ msg string }

func (e *notConfirmedError) Error() string { return e.msg }
func (e *notConfirmedError) Unwrap() error { return ErrNotConfirmed }

// confirmedOps are the operations whose outcome is confirmed; the
// metrics show each of them, at zero until one goes unconfirmed.
var confirmedOps = []string{
	protocol.OpQueueMemberAdd, protocol.OpQueueMemberDel, protocol.OpQueueMemberPause, protocol.OpQueuePenalty,
	protocol.OpRecordingStart, protocol.OpRecordingStop, protocol.OpRecordingMute,
	protocol.OpTransfer, protocol.OpTransferComplete, protocol.OpTransferCancel,
	protocol.OpDTMF, protocol.OpPark, protocol.OpParkedPickup,
}

// confirmation is what one operation waits for, and what its answer says
// when that does not come.
type confirmation struct {
	op     string // protocol op, counted when unconfirmed
	action string // the AMI action sent: "QueueAdd"
	events string // the events that must follow, one of them in words: "QueueMemberAdded"
	class  string // the manager.conf read class that carries them: "agent"
	n      int    // how many must follow (a pause in every queue: one per queue); 0 means 1
	match  func(*ami.Message) bool
	// cause, when set, is a likelier reason than the read class for the
	// events not to come (an attended transfer on a bridge without
	// transfer features).
	cause string
}

// waiter is one operation waiting for its events.
type waiter struct {
	c    confirmation
	got  chan *ami.Message // buffered for every event it waits for: Observe never blocks
	seen int               // events delivered, under waiters.mu
	lost chan struct{}     // closed when the AMI connection drops meanwhile
	why  string            // the drop's Error, written before lost is closed
}

// waiters is the operations waiting for events.
type waiters struct {
	mu  sync.Mutex
	set map[*waiter]struct{}
	n   atomic.Int32 // len(set), read without the lock for every event
}

// Observe gives the handler one AMI event, in the order Asterisk sent it;
// the agent's event consumer calls it for every event, after the channel
// table has seen it. It confirms the operations waiting for that event,
// follows the attended transfers in progress and forgets the recordings
// of a channel that hung up. It never blocks.
func (h *Handler) Observe(m *ami.Message) {
	if !m.IsEvent() {
		return
	}
	h.waits.observe(m)
	h.xfers.observe(m)
	if m.Event() == "Hangup" {
		h.recordingChannelGone(m.Get("Uniqueid"))
	}
}

// observe delivers m to the waiters it matches; a waiter that has all
// its events stops waiting. The loss of the AMI connection goes to every
// waiter: the events it waits for may never come, and it should not wait
// them out.
func (ws *waiters) observe(m *ami.Message) {
	if ws.n.Load() == 0 {
		return
	}
	lost := m.Event() == ami.EventDisconnected
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		switch {
		case lost:
			w.why = m.Get("Error")
			close(w.lost)
		case w.c.match(m):
			w.got <- m
			if w.seen++; w.seen < cap(w.got) {
				continue
			}
		default:
			continue
		}
		delete(ws.set, w)
	}
	ws.n.Store(int32(len(ws.set)))
}

// expect registers what an operation waits for. Call it before sending
// the action; confirm (or forget, when the action fails) ends the wait.
func (h *Handler) expect(c confirmation) *waiter {
	w := &waiter{c: c, got: make(chan *ami.Message, max(c.n, 1)), lost: make(chan struct{})}
	h.waits.mu.Lock()
	if h.waits.set == nil {
		h.waits.set = make(map[*waiter]struct{})
	}
	h.waits.set[w] = struct{}{}
	h.waits.n.Store(int32(len(h.waits.set)))
	h.waits.mu.Unlock()
	return w
}

// sendConfirmed sends act on a and waits for the events c describes: it
// registers them first (expect), since they may arrive before the
// Response, and stops waiting when the action fails. It is the order
// every operation confirmed by one action follows. c.action defaults to
// act's name. The error is the action's (an *ami.ResponseError for a
// refusal) or confirm's.
func (h *Handler) sendConfirmed(ctx context.Context, a AMI, act *ami.Message, c confirmation) ([]*ami.Message, error) {
	if c.action == "" {
		c.action = act.Action()
	}
	w := h.expect(c)
	if _, err := a.Action(ctx, act); err != nil {
		h.forget(w)
		return nil, err
	}
	return h.confirm(ctx, w)
}

// forget stops w waiting; it may be called more than once.
func (h *Handler) forget(w *waiter) {
	h.waits.mu.Lock()
	delete(h.waits.set, w)
	h.waits.n.Store(int32(len(h.waits.set)))
	h.waits.mu.Unlock()
}

// confirm waits for w's events, for the confirmation timeout cut to what
// is left of the request's deadline (confirmWithin), and returns them.
// Otherwise it answers ErrNotConfirmed, saying what was expected, for how
// long, and that the AMI user may lack the read class that carries it; or
// at once, when the AMI connection drops meanwhile, an error wrapping
// ami.ErrDisconnected (ami_down: the action may or may not have run); or
// ctx's error.
func (h *Handler) confirm(ctx context.Context, w *waiter) ([]*ami.Message, error) {
	defer h.forget(w)
	d := h.confirmWithin(ctx)
	t := time.NewTimer(d)
	defer t.Stop()
	want := cap(w.got)
	out := make([]*ami.Message, 0, want)
	for len(out) < want {
		select {
		case m := <-w.got:
			out = append(out, m)
		case <-w.lost:
			if out = drain(w, out); len(out) == want { // they came before the drop
				return out, nil
			}
			return nil, fmt.Errorf("%s: waiting for %s: %w (%s)", w.c.action, w.c.events, ami.ErrDisconnected, w.why)
		case <-t.C:
			if out = drain(w, out); len(out) == want { // delivered as time ran out
				return out, nil
			}
			return nil, h.unconfirmed(w.c, len(out), d)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// drain adds the events delivered to w and not read yet.
func drain(w *waiter, out []*ami.Message) []*ami.Message {
	for {
		select {
		case m := <-w.got:
			out = append(out, m)
		default:
			return out
		}
	}
}

// confirmWithin is how long an operation waits for its events: the
// configured timeout, cut to what is left of the request's deadline less
// a margin to answer in, so that the answer is not_confirmed, not a
// deadline the control plane gave up on.
func (h *Handler) confirmWithin(ctx context.Context) time.Duration {
	d := h.cfg.ConfirmTimeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl) - answerMargin; left < d {
			d = max(left, 0)
		}
	}
	return d
}

// answerMargin is kept from a request's deadline to send its answer.
const answerMargin = 50 * time.Millisecond

// unconfirmed is the answer of an operation whose events did not come:
// got of c's events came within d.
func (h *Handler) unconfirmed(c confirmation, got int, d time.Duration) error {
	what := "no " + c.events + " event"
	if n := max(c.n, 1); n > 1 {
		what = fmt.Sprintf("%d of the %d %s events expected", got, n, c.events)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Asterisk accepted %s but sent %s within %v: it may not have happened, or not as asked", c.action, what, d.Round(time.Millisecond))
	if c.cause != "" {
		b.WriteString("; " + c.cause)
	}
	fmt.Fprintf(&b, "; or the agent's AMI user lacks read=%s (manager.conf), which carries those events", c.class)
	return h.notConfirmed(c.op, b.String())
}

// notConfirmed is the one way an operation answers ErrCodeNotConfirmed:
// counted per op for the metrics, and logged.
func (h *Handler) notConfirmed(op, msg string) error {
	h.unconfirmedOps.add(op)
	h.log.Warn("operation not confirmed", "op", op, "why", msg)
	return &notConfirmedError{msg: msg}
}

// unconfirmedCounts counts, per op, the operations answered not_confirmed.
type unconfirmedCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (u *unconfirmedCounts) add(op string) {
	u.mu.Lock()
	if u.n == nil {
		u.n = make(map[string]uint64)
	}
	u.n[op]++
	u.mu.Unlock()
}

// snapshot has every op of confirmedOps, so that a counter exists before
// its first increment (an alert on its increase sees the first one).
func (u *unconfirmedCounts) snapshot() map[string]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]uint64, len(confirmedOps))
	for _, op := range confirmedOps {
		out[op] = 0
	}
	for k, v := range u.n {
		out[k] = v
	}
	return out
}

// CheckConfirmTimeout refuses a confirmation timeout outside 100ms..1m
// (zero is DefaultConfirmTimeout).
func CheckConfirmTimeout(d time.Duration) error {
	if d != 0 && (d < 100*time.Millisecond || d > time.Minute) {
		return fmt.Errorf("ConfirmTimeout %v is outside 100ms..1m", d)
	}
	return nil
}
