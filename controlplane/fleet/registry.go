package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// ErrOffline means the agent has no live tunnel to this control plane. The
// request was not sent anywhere: callers fail fast (HTTP 503) rather than
// wait for a reconnect or try another PBX.
var ErrOffline = errors.New("pbx offline")

// ErrDirectoryDown: which replica holds the agent's tunnel could not be
// read (the store did not answer); nothing was sent.
var ErrDirectoryDown = errors.New("cannot tell which control-plane replica holds the agent")

// ReplicaError: the agent's tunnel is held by another control-plane
// replica that is dead or cannot be reached. It matches ErrOffline: the
// agent reconnects to a live replica by itself, and the caller retries.
type ReplicaError struct {
	AgentID string
	// Replica names the holder (its URL, else its id).
	Replica string
	// Reason says what is wrong with it, in words for API users: "stopped
	// answering its heartbeat", "cannot be reached".
	Reason string
	// Sent: the request may have reached the agent before the replica
	// failed, so its outcome is unknown (a client's Idempotency-Key makes
	// a retry safe).
	Sent bool
	Err  error
}

func (e *ReplicaError) Error() string {
	s := fmt.Sprintf("agent %s is held by control-plane replica %s, which %s", e.AgentID, e.Replica, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrOffline) true.
func (e *ReplicaError) Is(target error) bool { return target == ErrOffline }

// Unwrap returns the transport error, if any.
func (e *ReplicaError) Unwrap() error { return e.Err }

// Caller routes one request to an agent wherever it is connected. The API
// depends on this rather than on *Registry.
type Caller interface {
	Call(ctx context.Context, agentID, op string, args, result any) error
	// Fetch is Call for an op that answers with bytes (Conn.Fetch): the
	// caller reads them from the ReadCloser and closes it.
	Fetch(ctx context.Context, agentID, op string, args, result any) (io.ReadCloser, error)
}

// Directory answers "which agents are connected here". In a multi-replica
// deployment each replica has its own; the cluster-wide view (agent →
// replica) would live in PostgreSQL behind a Caller.
type Directory interface {
	Get(agentID string) (*Conn, bool)
	List() []*Conn
	Len() int
}

var (
	_ Caller    = (*Registry)(nil)
	_ Directory = (*Registry)(nil)
)

// Conn is one agent's live tunnel. The exported fields are fixed when the
// connection is made; status changes with every heartbeat.
type Conn struct {
	AgentID      string
	EnterpriseID int64
	// SessionID is random per connection; it tells a replaced
	// connection from its successor in logs and in Welcome.
	SessionID string
	Hello     protocol.Hello
	// Protocol is the protocol version spoken on this tunnel: the
	// agent's Hello.Protocol, which the gateway checked this control plane
	// speaks. Call refuses ops newer than it.
	Protocol    int
	ConnectedAt time.Time
	// MaxFrameBytes bounds a response frame; zero means
	// protocol.DefaultMaxFrameBytes. Set it before the first Call.
	MaxFrameBytes int
	// Replica names the control-plane replica holding the tunnel (its
	// --replica-url) when several run; empty when one runs alone.
	Replica string

	// sess is nil for a view of a session another replica holds (NewView).
	sess *tunnel.Session

	mu       sync.Mutex
	status   protocol.Status
	statusAt time.Time
}

// NewConn wraps an accepted tunnel session of an authenticated agent.
func NewConn(agentID string, enterpriseID int64, sess *tunnel.Session, hello protocol.Hello, now time.Time) *Conn {
	return &Conn{
		AgentID:      agentID,
		EnterpriseID: enterpriseID,
		SessionID:    rand.Text(),
		Hello:        hello,
		Protocol:     hello.Protocol,
		ConnectedAt:  now,
		sess:         sess,
	}
}

// NewView describes a session that another control-plane replica holds,
// as that replica recorded it: the fleet view shows it like a local one.
// It has no tunnel here: Call and Fetch answer ErrOffline (requests go through a
// cluster-aware Caller), Done is closed and Close does nothing.
func NewView(agentID, sessionID, replica string, hello protocol.Hello, since time.Time, st protocol.Status, statusAt time.Time) *Conn {
	return &Conn{AgentID: agentID, SessionID: sessionID, Replica: replica, Hello: hello, Protocol: hello.Protocol,
		ConnectedAt: since, status: st, statusAt: statusAt}
}

// Status returns the last status the agent reported and when it arrived;
// the zero time if none yet.
func (c *Conn) Status() (protocol.Status, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.statusAt
}

// SetStatus records a status received on the control stream.
func (c *Conn) SetStatus(st protocol.Status, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status, c.statusAt = st, at
}

// Done is closed when the tunnel is gone.
func (c *Conn) Done() <-chan struct{} {
	if c.sess == nil {
		return closedChan
	}
	return c.sess.Done()
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// Close ends the tunnel; the agent will reconnect.
func (c *Conn) Close() error {
	if c.sess == nil {
		return nil
	}
	return c.sess.Close()
}

// Registry is the set of agents connected to this process, at most one
// Conn per agent. It is safe for concurrent use.
type Registry struct {
	logger *slog.Logger
	mu     sync.RWMutex
	conns  map[string]*Conn
}

// NewRegistry returns an empty registry; a nil logger discards.
func NewRegistry(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		logger: logger.With("component", "fleet"),
		conns:  make(map[string]*Conn),
	}
}

// Register makes c the agent's current connection. An older connection of
// the same agent is closed and returned: the agent reconnected (perhaps
// before the old tunnel's keepalive noticed it was dead), and the newest
// tunnel is the one that works.
func (r *Registry) Register(c *Conn) (replaced *Conn) {
	r.mu.Lock()
	replaced = r.conns[c.AgentID]
	r.conns[c.AgentID] = c
	r.mu.Unlock()
	if replaced != nil && replaced != c {
		r.logger.Info("agent connection replaced", "agent", c.AgentID,
			"old_session", replaced.SessionID, "new_session", c.SessionID)
		_ = replaced.Close()
		return replaced
	}
	// The gateway logs the connection at Info with the agent's versions.
	r.logger.Debug("agent registered", "agent", c.AgentID, "enterprise", c.EnterpriseID,
		"session", c.SessionID, "agent_version", c.Hello.AgentVersion, "protocol", c.Protocol)
	return nil
}

// Unregister removes c if it is still the agent's current connection; a
// connection that was already replaced leaves its successor alone.
func (r *Registry) Unregister(c *Conn) {
	r.mu.Lock()
	cur, ok := r.conns[c.AgentID]
	removed := ok && cur == c
	if removed {
		delete(r.conns, c.AgentID)
	}
	r.mu.Unlock()
	if removed {
		r.logger.Debug("agent unregistered", "agent", c.AgentID, "session", c.SessionID,
			"connected_for", time.Since(c.ConnectedAt).Round(time.Second))
	}
}

// Revoke removes the agent's current connection at once, so Len, Get and
// List no longer count it, and closes its tunnel: the agent was revoked
// while connected (its redial is refused). It reports whether there was
// one.
func (r *Registry) Revoke(agentID string) bool {
	r.mu.Lock()
	c, ok := r.conns[agentID]
	delete(r.conns, agentID)
	r.mu.Unlock()
	if !ok {
		return false
	}
	r.logger.Info("revoked agent disconnected", "agent", agentID, "session", c.SessionID)
	_ = c.Close()
	return true
}

// Get returns the agent's current connection.
func (r *Registry) Get(agentID string) (*Conn, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.conns[agentID]
	return c, ok
}

// List returns the current connections ordered by agent id.
func (r *Registry) List() []*Conn {
	r.mu.RLock()
	out := make([]*Conn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Conn) int { return strings.Compare(a.AgentID, b.AgentID) })
	return out
}

// Len is the number of connected agents.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.conns)
}

// Call sends one request to the agent's current connection; see Conn.Call.
// An agent that is not connected is ErrOffline at once.
func (r *Registry) Call(ctx context.Context, agentID, op string, args, result any) error {
	c, ok := r.Get(agentID)
	if !ok {
		return fmt.Errorf("call %s on agent %s: %w", op, agentID, ErrOffline)
	}
	return c.Call(ctx, op, args, result)
}

// Fetch runs a body op (Conn.Fetch) on the agent's session here.
func (r *Registry) Fetch(ctx context.Context, agentID, op string, args, result any) (io.ReadCloser, error) {
	c, ok := r.Get(agentID)
	if !ok {
		return nil, fmt.Errorf("fetch %s from agent %s: %w", op, agentID, ErrOffline)
	}
	return c.Fetch(ctx, op, args, result)
}
