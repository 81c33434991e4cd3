package ami

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pingAction is shared: actions are never modified when sent.
var pingAction = NewAction("Ping")

// Action sends m with our own ActionID (any ActionID in m is ignored; m is
// not modified) and waits for its Response, at most ActionTimeout unless
// ctx ends sooner. A "Response: Error" comes back as *ResponseError. The
// returned message is shared with no one and may be kept.
func (c *Client) Action(ctx context.Context, m *Message) (*Message, error) {
	r, err := c.do(ctx, m, kindPlain)
	if err != nil {
		return nil, err
	}
	return r.m, nil
}

// ListResult is an event-list action's answer: the Response ("…will
// follow"), the items carrying our ActionID, and the closing event whose
// EventList header is "Complete" (with ListItems). Complete is nil when
// Asterisk answered without a list (a plain Success).
type ListResult struct {
	Response *Message
	Items    []*Message
	Complete *Message
}

// List sends an event-list action (CoreShowChannels, Status, BridgeList,
// Hangup with a /regex/ channel…) and collects its items until the
// …Complete event. The whole list must arrive within the action timeout.
// List items are not delivered to subscriptions.
func (c *Client) List(ctx context.Context, m *Message) (*ListResult, error) {
	r, err := c.do(ctx, m, kindList)
	if err != nil {
		return nil, err
	}
	if r.list != nil {
		return r.list, nil
	}
	return &ListResult{Response: r.m}, nil
}

// Originating is an asynchronous Originate that Asterisk has queued.
type Originating struct {
	id   string
	done chan struct{}
	res  *OriginateResult
	err  error
}

// OriginateResult is the OriginateResponse event of an Originate.
type OriginateResult struct {
	Success bool
	// Reason is Asterisk's outbound-call reason: 4 answered, 0 no such
	// extension or technology, 3 no answer, 5 busy, 8 congestion.
	Reason int
	// Channel is the created channel on success, the requested dial
	// string on failure.
	Channel string
	// Uniqueid is "<unknown>" on failure.
	Uniqueid string
	Raw      *Message
}

// Originate reasons reported by Asterisk.
const (
	ReasonFailure    = 0 // no such extension, bad technology
	ReasonNoAnswer   = 3
	ReasonAnswered   = 4
	ReasonBusy       = 5
	ReasonCongestion = 8
)

// Originate sends m with Async: true (m is not modified) and returns once
// Asterisk answered "Originate successfully queued"; Wait then gives the
// call's outcome. Sync failures ("Originate failed", "Invalid channel"…)
// come back as *ResponseError.
func (c *Client) Originate(ctx context.Context, m *Message) (*Originating, error) {
	if !strings.EqualFold(m.Action(), "Originate") {
		return nil, fmt.Errorf("ami: Originate called with action %q", m.Action())
	}
	m = m.Clone()
	m.Del("Async")
	m.Add("Async", "true")
	r, err := c.do(ctx, m, kindOriginate)
	if err != nil {
		return nil, err
	}
	return r.orig, nil
}

// ActionID is the ActionID the Originate was sent with (and that its
// OriginateResponse event carries).
func (o *Originating) ActionID() string { return o.id }

// Wait returns the OriginateResponse, which Asterisk sends when the call
// is answered or has failed (after the Originate's Timeout). Only ctx
// bounds it. If the connection drops first, the error is ErrDisconnected.
// Wait may be called many times.
func (o *Originating) Wait(ctx context.Context) (*OriginateResult, error) {
	select {
	case <-o.done:
		return o.res, o.err
	case <-ctx.Done():
		select {
		case <-o.done:
			return o.res, o.err
		default:
		}
		return nil, ctxError("OriginateResponse", ctx.Err())
	}
}

// resolve is called once, under the session's pending lock.
func (o *Originating) resolve(m *Message, err error) {
	if err != nil {
		o.err = err
	} else {
		reason, _ := strconv.Atoi(m.Get("Reason"))
		o.res = &OriginateResult{
			Success:  strings.EqualFold(m.Response(), "Success"),
			Reason:   reason,
			Channel:  m.Get("Channel"),
			Uniqueid: m.Get("Uniqueid"),
			Raw:      m,
		}
	}
	close(o.done)
}

// Ping sends a Ping and returns the round trip.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := c.cfg.Now()
	if _, err := c.do(ctx, pingAction, kindPlain); err != nil {
		return 0, err
	}
	return c.cfg.Now().Sub(start), nil
}

// do runs one action on the current session and turns "Response: Error"
// into *ResponseError.
func (c *Client) do(ctx context.Context, m *Message, kind callKind) (reply, error) {
	if err := ctx.Err(); err != nil {
		return reply{}, ctxError(m.Action(), err)
	}
	s, err := c.current()
	if err != nil {
		return reply{}, err
	}
	r, err := s.roundTrip(ctx, m, kind)
	if err != nil {
		return reply{}, err
	}
	if r.err != nil {
		return reply{}, r.err
	}
	if strings.EqualFold(r.m.Response(), "Error") {
		return reply{}, &ResponseError{Action: m.Action(), Message: r.m.Get("Message")}
	}
	return r, nil
}

func ctxError(what string, err error) error {
	if err == context.DeadlineExceeded {
		return fmt.Errorf("%w: %s: %w", ErrTimeout, what, err)
	}
	return fmt.Errorf("ami: %s: %w", what, err)
}
