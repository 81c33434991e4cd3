package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// CallPath is the internal route a replica forwards requests to
// (api.ClusterCallPath).
const CallPath = "/cluster/v1/call"

// Unauthenticated reports whether err is HandleCall's refusal of a call's
// signature (api.ClusterPeer).
func (c *Cluster) Unauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// maxForwardedDeadline bounds the deadline an internal call may carry
// (the API's AMI timeout is at most a minute).
const maxForwardedDeadline = 5 * time.Minute

// maxReplyBytes bounds an internal call's reply (an agent's response
// frame, protocol.DefaultMaxFrameBytes, plus its envelope).
const maxReplyBytes = 8 << 20

// forwardRequest is the body of an internal call.
type forwardRequest struct {
	Agent     string          `json:"agent"`
	Op        string          `json:"op"`
	Args      json.RawMessage `json:"args,omitempty"`
	Deadline  time.Time       `json:"deadline"`
	RequestID string          `json:"request_id"`
	// Nonce differs on every send, so a second send of one request (to
	// the new holder, after "not here") is not refused as a replay.
	Nonce string `json:"nonce"`
}

// Kinds of an internal call's outcome.
const (
	replyOK       = "ok"
	replyNotHere  = "not_here" // the replica holds no session of the agent: nothing was sent
	replyOffline  = "offline"  // the tunnel closed during the request
	replyTimeout  = "timeout"
	replyCanceled = "canceled"
	replyAgent    = "agent" // the agent refused or failed: Code, Message
	replyInternal = "internal"
)

type forwardReply struct {
	Kind    string          `json:"kind"`
	Result  json.RawMessage `json:"result,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

var _ fleet.Caller = (*Cluster)(nil)

// Call sends one request to the agent wherever its tunnel is: through
// this replica's own session, or forwarded once to the replica holding
// it. The errors are fleet.Conn.Call's, plus a *fleet.ReplicaError
// (matching fleet.ErrOffline) when the holder is dead or unreachable.
func (c *Cluster) Call(ctx context.Context, agentID, op string, args, result any) error {
	return c.viaHolder(ctx, agentID, op, args,
		func(conn *fleet.Conn) error { return conn.Call(ctx, op, args, result) },
		func(holder store.Replica, req forwardRequest) (forwardReply, error) {
			rep, err := c.forward(ctx, holder, req)
			return rep, c.outcome(ctx, agentID, op, holder, rep, err, result)
		})
}

// viaHolder runs a request on the agent's session: local on this
// replica's own, else remote to the replica holding it (its reply, and
// the reply or failure as Call's error), which the Observer counts. The view may name a holder that just let the agent
// go; the store then names the new one. Two tries: "not here"
// (errNotHere) is sure to have sent nothing.
func (c *Cluster) viaHolder(ctx context.Context, agentID, op string, args any,
	local func(*fleet.Conn) error, remote func(store.Replica, forwardRequest) (forwardReply, error)) error {
	if conn, ok := c.reg.Get(agentID); ok || !c.Clustered() {
		if !ok {
			return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrOffline)
		}
		return local(conn)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrNoDeadline)
	}
	req := forwardRequest{Agent: agentID, Op: op, Deadline: deadline, RequestID: fleet.RequestID(ctx)}
	if req.RequestID == "" {
		req.RequestID = rand.Text()
	}
	if args != nil {
		raw, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("call %s: encode args: %w", op, err)
		}
		req.Args = raw
	}
	for attempt := range 2 {
		o, err := c.owner(ctx, agentID, attempt > 0)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrOffline)
		case err != nil:
			return fmt.Errorf("call %s on agent %s: %w (%v)", op, agentID, fleet.ErrDirectoryDown, err)
		case o.ReplicaID == "":
			return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrOffline)
		case o.ReplicaID == c.cfg.ID:
			// Ours by the store, but the session is gone (it just
			// closed, or is being replaced here).
			if conn, ok := c.reg.Get(agentID); ok {
				return local(conn)
			}
			return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrOffline)
		}
		holder, live := c.replica(o.ReplicaID)
		if !live {
			return &fleet.ReplicaError{AgentID: agentID, Replica: c.goneName(agentID, o.ReplicaID),
				Reason: "has left the cluster (it stopped, or missed its heartbeats); its agents reconnect to a live replica"}
		}
		start := time.Now()
		rep, err := remote(holder, req)
		c.cfg.Observer.Forwarded(forwardResult(rep, err), time.Since(start))
		if !errors.Is(err, errNotHere) {
			return err
		}
	}
	return fmt.Errorf("call %s on agent %s: %w", op, agentID, fleet.ErrOffline)
}

var errNotHere = errors.New("the replica no longer holds the agent")

// forward posts req to holder once. Go's transport re-sends a POST only
// when nothing of it was written: never after the holder may have acted.
func (c *Cluster) forward(ctx context.Context, holder store.Replica, req forwardRequest) (forwardReply, error) {
	var rep forwardReply
	resp, err := c.post(ctx, holder, CallPath, req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fmt.Errorf("decode reply: %w", err)
	}
	return rep, nil
}

// post sends req, signed, to holder's internal route path. An answer
// other than 200 is a *statusError (and its body is closed).
func (c *Cluster) post(ctx context.Context, holder store.Replica, path string, req forwardRequest) (*http.Response, error) {
	req.Nonce = rand.Text()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, holder.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	// The holder's log lines about it carry the client's request id.
	hr.Header.Set("X-Request-Id", req.RequestID)
	c.signer.sign(hr.Header, http.MethodPost, path, c.cfg.ID, body)
	resp, err := c.client.Do(hr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		return nil, &statusError{code: resp.StatusCode, body: string(raw)}
	}
	return resp, nil
}

type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("answered %d: %s", e.code, e.body) }

// outcome turns a forwarded call's reply (or failure) into Conn.Call's
// errors.
func (c *Cluster) outcome(ctx context.Context, agentID, op string, holder store.Replica, rep forwardReply, err error, result any) error {
	name := holder.URL
	if err != nil {
		var se *statusError
		var oe *net.OpError
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("call %s on agent %s via %s: %w", op, agentID, name, ctx.Err())
		case errors.As(err, &oe) && oe.Op == "dial":
			return &fleet.ReplicaError{AgentID: agentID, Replica: name, Reason: "cannot be reached (nothing was sent)", Err: err}
		case errors.As(err, &se) && se.code == http.StatusUnauthorized:
			c.log.Error("a replica refused this one's signed call: do all replicas share one --cluster-secret-file, and are their clocks right?",
				"holder", name, "answer", se.body)
			return &fleet.ReplicaError{AgentID: agentID, Replica: name, Reason: "refused this replica's credentials (cluster secrets differ?)"}
		case errors.As(err, &se) && se.code == http.StatusServiceUnavailable:
			// Stopping, or its connection bound: it did not take the call.
			return &fleet.ReplicaError{AgentID: agentID, Replica: name, Reason: "is unavailable (" + se.body + ")"}
		default:
			return &fleet.ReplicaError{AgentID: agentID, Replica: name, Reason: "failed during the request, whose outcome is unknown", Sent: true, Err: err}
		}
	}
	switch rep.Kind {
	case replyOK:
		if result != nil && len(rep.Result) > 0 {
			if err := json.Unmarshal(rep.Result, result); err != nil {
				return fmt.Errorf("call %s on agent %s: decode result: %w", op, agentID, err)
			}
		}
		return nil
	case replyNotHere:
		return errNotHere
	case replyOffline:
		return fmt.Errorf("call %s on agent %s via %s: %s: %w", op, agentID, name, rep.Message, fleet.ErrOffline)
	case replyTimeout:
		return fmt.Errorf("call %s on agent %s via %s: %w", op, agentID, name, context.DeadlineExceeded)
	case replyCanceled:
		return fmt.Errorf("call %s on agent %s via %s: %w", op, agentID, name, context.Canceled)
	case replyAgent:
		return fmt.Errorf("call %s on agent %s: %w", op, agentID, &protocol.Error{Code: rep.Code, Message: rep.Message})
	}
	return fmt.Errorf("call %s on agent %s via %s: the holder failed (%s)", op, agentID, name, rep.Message)
}

func forwardResult(rep forwardReply, err error) string {
	var re *fleet.ReplicaError
	switch {
	case errors.Is(err, errNotHere):
		return replyNotHere
	case errors.As(err, &re):
		return "unreachable"
	case err != nil && rep.Kind == "":
		return replyInternal
	case rep.Kind == replyAgent:
		return rep.Code
	}
	return rep.Kind
}

// HandleCall serves an internal call (POST CallPath) from another
// replica: it checks the signature (ErrUnauthenticated), runs the request
// on this replica's session of the agent under the caller's deadline and
// request id, and returns the reply's body. Like the API's own calls, it
// is not cancelled if the caller goes: a request half done is worse than
// one finished.
func (c *Cluster) HandleCall(ctx context.Context, h http.Header, body []byte) ([]byte, error) {
	in, rep, err := c.accept(h, CallPath, body, maxForwardedDeadline)
	if err != nil || rep != nil {
		return marshalReply(rep, err)
	}
	cctx, cancel := context.WithDeadline(fleet.WithRequestID(context.WithoutCancel(ctx), in.req.RequestID), in.deadline)
	defer cancel()
	var result json.RawMessage
	err = in.conn.Call(cctx, in.req.Op, in.args(), &result)
	return json.Marshal(replyOf(err, result))
}

// inbound is an internal call accepted for this replica's session.
type inbound struct {
	req      forwardRequest
	conn     *fleet.Conn
	deadline time.Time // the caller's, at most this route's bound
}

func (in inbound) args() any {
	if len(in.req.Args) == 0 {
		return nil
	}
	return in.req.Args
}

// accept checks an internal call's signature for path (an error matching
// ErrUnauthenticated), decodes it and finds the agent's session here. A
// reply instead says why it is not run (malformed, not here).
func (c *Cluster) accept(h http.Header, path string, body []byte, maxDeadline time.Duration) (inbound, *forwardReply, error) {
	if !c.Clustered() {
		return inbound{}, nil, fmt.Errorf("%w: this replica runs without clustering", ErrUnauthenticated)
	}
	if _, err := c.signer.verify(h, http.MethodPost, path, body); err != nil {
		return inbound{}, nil, err
	}
	var in inbound
	if err := json.Unmarshal(body, &in.req); err != nil || in.req.Agent == "" || in.req.Op == "" || in.req.Deadline.IsZero() {
		return in, &forwardReply{Kind: replyInternal, Message: "malformed internal call"}, nil
	}
	conn, ok := c.reg.Get(in.req.Agent)
	if !ok {
		return in, &forwardReply{Kind: replyNotHere}, nil
	}
	in.conn, in.deadline = conn, in.req.Deadline
	if limit := c.cfg.Now().Add(maxDeadline); in.deadline.After(limit) {
		in.deadline = limit
	}
	return in, nil, nil
}

func marshalReply(rep *forwardReply, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(rep)
}

// replyOf is Conn.Call's outcome as an internal reply.
func replyOf(err error, result json.RawMessage) forwardReply {
	var pe *protocol.Error
	switch {
	case err == nil:
		return forwardReply{Kind: replyOK, Result: result}
	case errors.As(err, &pe):
		return forwardReply{Kind: replyAgent, Code: pe.Code, Message: pe.Message}
	case errors.Is(err, context.DeadlineExceeded):
		return forwardReply{Kind: replyTimeout}
	case errors.Is(err, context.Canceled):
		return forwardReply{Kind: replyCanceled}
	case errors.Is(err, fleet.ErrOffline):
		return forwardReply{Kind: replyOffline, Message: "the tunnel closed during the request"}
	}
	return forwardReply{Kind: replyInternal, Message: "the holding replica failed the request"}
}
