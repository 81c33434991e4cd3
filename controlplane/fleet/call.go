package fleet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// ErrNoDeadline: a Call whose ctx has no deadline. The caller (the API,
// with its AMI timeout) is the one place a request's deadline is chosen;
// the agent receives it in the request and stops working there.
var ErrNoDeadline = errors.New("fleet: call without a deadline")

// Call sends op with args to the agent and decodes the result into result
// (unless nil). The request carries ctx's deadline, which ctx must have
// (ErrNoDeadline), and the agent stops working on it then.
//
// Errors: a *protocol.Error with code protocol.ErrCodeAgentTooOld if the
// agent's protocol predates op (nothing is sent: an older agent would not
// know the op, and the tunnel stays up for everything else); ErrOffline if
// the tunnel is gone; an error wrapping context.DeadlineExceeded (or
// context.Canceled) if ctx ends first, also when the agent answered
// protocol.ErrCodeTimeout; a *protocol.Error (errors.As) if the agent
// refused or failed the request.
func (c *Conn) Call(ctx context.Context, op string, args, result any) error {
	req, err := c.request(ctx, op, args)
	if err != nil {
		return fmt.Errorf("call %s on agent %s: %w", op, c.AgentID, err)
	}
	resp, err := c.roundTrip(ctx, req)
	if err == nil {
		err = decodeResponse(req, resp, result)
	}
	if err != nil {
		return fmt.Errorf("call %s on agent %s: %w", op, c.AgentID, err)
	}
	return nil
}

// request checks that op can be sent to the agent now and builds its
// Request (Call and Fetch).
func (c *Conn) request(ctx context.Context, op string, args any) (protocol.Request, error) {
	if need := opMinVersion(op); need > c.Protocol {
		return protocol.Request{}, c.tooOld(op, need)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return protocol.Request{}, ErrNoDeadline
	}
	if c.sess == nil {
		return protocol.Request{}, fmt.Errorf("held by replica %s: %w", c.Replica, ErrOffline)
	}
	select {
	case <-c.sess.Done():
		return protocol.Request{}, ErrOffline
	default:
	}
	id := RequestID(ctx)
	if id == "" {
		id = rand.Text()
	}
	req := protocol.Request{ID: id, Op: op, Deadline: deadline}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return protocol.Request{}, fmt.Errorf("encode args: %w", err)
		}
		req.Args = raw
	}
	return req, nil
}

// decodeResponse checks that resp answers req and decodes its result
// into result (unless nil), or returns the agent's error.
func decodeResponse(req protocol.Request, resp protocol.Response, result any) error {
	if resp.ID != req.ID {
		return fmt.Errorf("response for request %q, want %q", resp.ID, req.ID)
	}
	if resp.Error != nil {
		if resp.Error.Code == protocol.ErrCodeTimeout {
			// The agent gave up at the deadline we sent, which is
			// ctx's; its answer often beats our own timer.
			return fmt.Errorf("%w: %w", resp.Error, context.DeadlineExceeded)
		}
		return resp.Error
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("decode result: %w", err)
		}
	}
	return nil
}

// tooOld says which agent cannot do op and what it would take, in words
// an API user can act on.
func (c *Conn) tooOld(op string, need int) *protocol.Error {
	agent := strings.TrimSpace("agent " + c.Hello.AgentVersion)
	return &protocol.Error{
		Code:    protocol.ErrCodeAgentTooOld,
		Message: fmt.Sprintf("%s speaks protocol %d; %s needs protocol %d: upgrade the agent", agent, c.Protocol, op, need),
	}
}

func (c *Conn) roundTrip(ctx context.Context, req protocol.Request) (protocol.Response, error) {
	var resp protocol.Response
	stream, err := c.sess.Open(ctx, protocol.StreamRequest)
	if err != nil {
		return resp, c.classify(ctx, err)
	}
	defer stream.Close()
	_ = stream.SetDeadline(req.Deadline)
	// The deadline covers expiry; this covers cancellation before it.
	stop := context.AfterFunc(ctx, func() { _ = stream.SetDeadline(time.Now()) })
	defer stop()

	if err := protocol.WriteFrame(stream, req); err != nil {
		return resp, c.classify(ctx, err)
	}
	if err := protocol.ReadFrame(stream, &resp, c.MaxFrameBytes); err != nil {
		return resp, c.classify(ctx, err)
	}
	return resp, nil
}

// classify turns stream errors into the three outcomes callers branch on.
func (c *Conn) classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The stream deadline is ctx's deadline; it may fire a hair
		// before ctx's own timer does.
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	select {
	case <-c.sess.Done():
		return fmt.Errorf("%w: tunnel closed during the request (%v)", ErrOffline, err)
	default:
	}
	if errors.Is(err, tunnel.ErrSessionClosed) {
		return fmt.Errorf("%w (%v)", ErrOffline, err)
	}
	return err
}

// opMinVersion is protocol.OpMinVersion; tests add ops newer than any
// real one through export_test.go.
var opMinVersion = protocol.OpMinVersion

type requestIDKey struct{}

// WithRequestID makes calls under ctx carry id as their protocol request
// id, so the agent's log lines about the request show the same id as the
// control plane's (the HTTP request id). id must be a short printable token.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id set by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
