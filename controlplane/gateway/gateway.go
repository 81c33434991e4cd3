package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// AgentStore is the slice of the store the gateway uses; *store.Store
// satisfies it.
type AgentStore interface {
	// AgentByToken maps a token to its agent, or store.ErrNotFound /
	// store.ErrRevoked.
	AgentByToken(ctx context.Context, token string) (store.Agent, error)
	// AgentAckedSeq is the highest event sequence stored for the agent.
	AgentAckedSeq(ctx context.Context, agentID string) (int64, error)
	// StoreAgentEvents stores a batch and advances the agent's acked
	// sequence in one transaction, skipping a resend's duplicates.
	StoreAgentEvents(ctx context.Context, agentID string, enterpriseID int64, events []protocol.Event) ([]store.StoredEvent, error)
	// TouchAgents records when each agent was last connected, in one
	// write.
	TouchAgents(ctx context.Context, seen map[string]time.Time) error
}

// Config of a Gateway. Zero values take the defaults named below.
type Config struct {
	Store    AgentStore
	Registry *fleet.Registry
	Logger   *slog.Logger
	// Heartbeat is how often agents send Status (told in Welcome).
	Heartbeat time.Duration
	// StatusTimeout: a session whose agent sent no Status for this long
	// is dropped (ErrAgentSilent). It must exceed Heartbeat; the default
	// is Heartbeat + 10 s, the time yamux's keepalive took before (15 s
	// pings, 10 s to answer).
	StatusTimeout time.Duration
	// LastSeenInterval is how often a connected agent's last_seen is
	// written to the store. A connected agent's last seen time is read
	// live from the registry; the stored one matters once it disconnects
	// (recorded then too), or after a crash of this process, when it is
	// at most this old. A write per heartbeat would be 667 writes/s for
	// 10,000 agents.
	LastSeenInterval time.Duration
	// HelloTimeout bounds the time from upgrade to a complete Hello.
	HelloTimeout time.Duration
	// MaxFrameBytes bounds one frame read from an agent.
	MaxFrameBytes int
	// StoreTimeout bounds one store write of an event batch.
	StoreTimeout time.Duration
	// MaxCoalescedEvents bounds the events one store transaction takes
	// from frames the agent has already sent (see ingest).
	MaxCoalescedEvents int
	// Tunnel settings (keepalive, read limit).
	Tunnel tunnel.AcceptConfig
	// OnEvents, if set, is called after a batch is stored and before it is
	// acknowledged (the events hub fans out from here).
	OnEvents func(agent store.Agent, events []store.StoredEvent)
	// Observer, if set, is told about sessions and stored events (metrics).
	Observer Observer
	Now      func() time.Time
	// Version is the control plane's build version, told to agents of
	// protocol 2 or later in Welcome (they log it).
	Version string
	// Limits bound what one agent can make the control plane do.
	Limits
	// Ownership, if set, records cluster-wide which replica holds each
	// agent's session (the cluster package): a session is claimed once
	// registered, and released when it ends. A claim that fails ends the
	// session (the agent redials): an agent is connected only where the
	// store says so.
	Ownership Ownership
	// Replica names this replica on its sessions (fleet.Conn.Replica).
	Replica string
}

// Ownership records which replica holds each agent's session.
type Ownership interface {
	Claim(ctx context.Context, conn *fleet.Conn) error
	Release(conn *fleet.Conn)
}

// ErrAgentSilent ends a session whose agent sent no Status within
// Config.StatusTimeout.
var ErrAgentSilent = errors.New("agent silent")

// Observer is told what the gateway does; the metrics package implements it.
type Observer interface {
	AgentConnected()
	AgentDisconnected()
	EventsStored(n int)
	// EventsLost: an agent's gap event says this many were lost on the PBX.
	EventsLost(n uint64)
	// EventsThrottled: a batch waited this long for the agent's event
	// rate (Limits.EventRate) before it was stored.
	EventsThrottled(wait time.Duration)
	// EventStoreFailed: the store refused a batch; it is held and retried.
	EventStoreFailed()
	// BatchesHeld: batches held because the store refused them, by delta.
	BatchesHeld(delta int)
	// AgentProtocolError: an agent broke a limit, by reason:
	// frame_too_large (events), control_frame_too_large (hello, status),
	// unexpected_stream, field_truncated.
	AgentProtocolError(reason string)
}

type nopObserver struct{}

func (nopObserver) AgentConnected()               {}
func (nopObserver) AgentDisconnected()            {}
func (nopObserver) EventsStored(int)              {}
func (nopObserver) EventsLost(uint64)             {}
func (nopObserver) EventsThrottled(time.Duration) {}
func (nopObserver) EventStoreFailed()             {}
func (nopObserver) BatchesHeld(int)               {}
func (nopObserver) AgentProtocolError(string)     {}

// Defaults.
const (
	DefaultHeartbeat = 15 * time.Second
	// DefaultStatusGrace is added to Heartbeat for the default
	// StatusTimeout.
	DefaultStatusGrace = 10 * time.Second
	// DefaultLastSeenInterval: see Config.LastSeenInterval.
	DefaultLastSeenInterval = 5 * time.Minute
	// lastSeenWait bounds how long a session's connect or disconnect
	// waits for its last_seen to be written.
	lastSeenWait        = time.Second
	DefaultHelloTimeout = 10 * time.Second
	DefaultStoreTimeout = 10 * time.Second
	// DefaultMaxCoalescedEvents: ten agent batches of 100.
	DefaultMaxCoalescedEvents = 1000
)

// Gateway serves protocol.ConnectPath.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
	live   map[*fleet.Conn]liveSession

	// Last-seen times waiting for the next write (markSeen): written
	// together, so 10,000 agents connecting or disconnecting at once cost
	// a few transactions, not 10,000 (group commit).
	seenMu      sync.Mutex
	seen        map[string]time.Time
	seenWritten chan struct{} // closed once the current seen is written
	seenKick    chan struct{}
	stopSeen    chan struct{}
	seenDone    chan struct{}
	seenOnce    sync.Once

	// held counts event batches held because the store refused them;
	// storeErr is the last refusal (StoreFailing).
	held     atomic.Int64
	storeErr atomic.Pointer[error]
}

// Validate says what is wrong with the configuration's values (zero
// values take the defaults; New also needs Store and Registry).
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Heartbeat", c.Heartbeat}, {"StatusTimeout", c.StatusTimeout}, {"LastSeenInterval", c.LastSeenInterval},
		{"HelloTimeout", c.HelloTimeout}, {"StoreTimeout", c.StoreTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if err := c.Tunnel.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxFrameBytes < 0 || c.MaxCoalescedEvents < 0 {
		errs = append(errs, errors.New("MaxFrameBytes and MaxCoalescedEvents must not be negative"))
	}
	if c.MaxFrameBytes > 0 && c.MaxFrameBytes < MinMaxFrameBytes {
		errs = append(errs, fmt.Errorf("MaxFrameBytes %d is below %d: agents send event frames of up to 64 KiB", c.MaxFrameBytes, MinMaxFrameBytes))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	hb := cmp.Or(c.Heartbeat, DefaultHeartbeat)
	if c.StatusTimeout > 0 && c.StatusTimeout <= hb {
		errs = append(errs, fmt.Errorf("StatusTimeout %v must be longer than Heartbeat %v (agents send Status every Heartbeat)", c.StatusTimeout, hb))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	return nil
}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	c.StatusTimeout = cmp.Or(c.StatusTimeout, c.Heartbeat+DefaultStatusGrace)
	c.LastSeenInterval = cmp.Or(c.LastSeenInterval, DefaultLastSeenInterval)
	c.HelloTimeout = cmp.Or(c.HelloTimeout, DefaultHelloTimeout)
	c.StoreTimeout = cmp.Or(c.StoreTimeout, DefaultStoreTimeout)
	c.MaxCoalescedEvents = cmp.Or(c.MaxCoalescedEvents, DefaultMaxCoalescedEvents)
	c.MaxFrameBytes = cmp.Or(c.MaxFrameBytes, protocol.DefaultMaxFrameBytes)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Tunnel.Logger == nil {
		c.Tunnel.Logger = c.Logger
	}
	c.Limits.fill()
	c.Tunnel.AcceptBacklog = cmp.Or(c.Tunnel.AcceptBacklog, c.StreamBacklog)
	// Streams of a kind this build does not know: no agent that works
	// opens them.
	c.Tunnel.MaxDroppedStreams = cmp.Or(c.Tunnel.MaxDroppedStreams, c.StreamBacklog)
}

// New returns a Gateway; Store and Registry are required.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("gateway: Store and Registry are required")
	}
	cfg.fill()
	// readStatus's deadline notices a vanished agent (see StatusTimeout).
	cfg.Tunnel.NoKeepAlive = true
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("component", "gateway"), live: map[*fleet.Conn]liveSession{},
		seen: map[string]time.Time{}, seenWritten: make(chan struct{}), seenKick: make(chan struct{}, 1),
		stopSeen: make(chan struct{}), seenDone: make(chan struct{})}
	go g.flushSeenLoop()
	return g, nil
}

// markSeen records that agentID was connected at t. The returned channel
// is closed once that is written (or failed and was logged).
func (g *Gateway) markSeen(agentID string, t time.Time) <-chan struct{} {
	g.seenMu.Lock()
	g.seen[agentID] = t
	written := g.seenWritten
	g.seenMu.Unlock()
	select {
	case g.seenKick <- struct{}{}:
	default: // a write is already due
	}
	return written
}

// waitSeen waits for a markSeen's write, at most lastSeenWait.
func waitSeen(written <-chan struct{}) {
	t := time.NewTimer(lastSeenWait)
	defer t.Stop()
	select {
	case <-written:
	case <-t.C:
	}
}

func (g *Gateway) flushSeenLoop() {
	defer close(g.seenDone)
	for {
		select {
		case <-g.stopSeen:
			g.flushSeen()
			return
		case <-g.seenKick:
			g.flushSeen()
		}
	}
}

func (g *Gateway) flushSeen() {
	g.seenMu.Lock()
	seen, written := g.seen, g.seenWritten
	if len(seen) == 0 {
		g.seenMu.Unlock()
		return
	}
	g.seen, g.seenWritten = map[string]time.Time{}, make(chan struct{})
	g.seenMu.Unlock()
	defer close(written)
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.StoreTimeout)
	defer cancel()
	if err := g.cfg.Store.TouchAgents(ctx, seen); err != nil {
		// last_seen is for humans: logged, and newer times come later.
		g.log.Warn("record agents' last seen", "agents", len(seen), "err", err)
	}
}

// liveSession is how Close ends a session and learns that it ended.
type liveSession struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

// closeWindow bounds the sessions Close tears down at once. Ending a
// session starts several short-lived goroutines (stream and WebSocket
// teardown): cancelling 10,000 at once would queue some 40,000 of them
// ahead of the goroutine doing the cancelling.
const closeWindow = 256

// errClosing ends a session whose hello completed after Close began.
var errClosing = errors.New("control plane shutting down")

// Close ends every session and waits for their goroutines. New agents
// are refused (503) from its start; their last_seen is written once at
// the end.
func (g *Gateway) Close() {
	g.mu.Lock()
	g.closed = true
	live := make([]liveSession, 0, len(g.live))
	for _, s := range g.live {
		live = append(live, s)
	}
	g.mu.Unlock()
	window := make(chan struct{}, closeWindow)
	for _, s := range live {
		window <- struct{}{}
		s.cancel()
		go func() { <-s.done; <-window }()
	}
	g.wg.Wait()
	// Sessions recorded their last seen as they ended: write them.
	g.seenOnce.Do(func() { close(g.stopSeen) })
	<-g.seenDone
}

func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// RefusedError is an agent connection refused before the upgrade. The
// HTTP API writes it as text, which the agent logs as it is; Status is
// part of the tunnel's contract (401: the token, 400: the protocol
// version, 503: try again later).
type RefusedError struct {
	Status int
	// Code is a stable name for logs and metrics.
	Code   string
	Reason string
	// Header is added to the answer (the protocol versions this control
	// plane speaks).
	Header http.Header
}

func (e *RefusedError) Error() string { return "agent refused: " + e.Reason }

func refused(status int, code, reason string) *RefusedError {
	return &RefusedError{Status: status, Code: code, Reason: reason}
}

// Connect authenticates an agent by its token, upgrades, reads its hello
// and returns once the session runs on its own (see session). An error
// (a *RefusedError) means nothing was written.
func (g *Gateway) Connect(w http.ResponseWriter, r *http.Request) error {
	token, ok := bearer(r)
	if !ok {
		return refused(http.StatusUnauthorized, "unauthorized", "missing agent token: send Authorization: Bearer <agent token>")
	}
	if g.isClosed() {
		// Before the store lookup: agents redial at once when their
		// sessions are closed, and a stopping process owes them nothing.
		return refused(http.StatusServiceUnavailable, "shutting_down", "control plane shutting down")
	}
	agent, err := g.cfg.Store.AgentByToken(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked):
		g.log.Warn("agent refused", "token_id", store.PublicID(token), "reason", err.Error(), "remote", r.RemoteAddr)
		return refused(http.StatusUnauthorized, "unauthorized", "invalid or revoked agent token")
	case err != nil && r.Context().Err() != nil:
		// The agent hung up first (its handshake timeout): nothing is
		// wrong with the store, and the agent will redial.
		g.log.Info("agent gave up before it was authenticated", "token_id", store.PublicID(token), "remote", r.RemoteAddr)
		return refused(http.StatusServiceUnavailable, "gone", "agent hung up")
	case err != nil:
		g.log.Error("agent authentication failed", "err", err, "remote", r.RemoteAddr)
		return refused(http.StatusServiceUnavailable, "unavailable", "control plane store unavailable")
	}
	if _, err := tunnel.CheckVersion(r); err != nil {
		offered, _ := strconv.Atoi(strings.TrimSpace(r.Header.Get(protocol.VersionHeader)))
		if offered > protocol.Version {
			// A newer agent redials at once speaking our version: the
			// fleet is being upgraded agents first, which works.
			g.log.Info("agent offers a newer protocol; told ours", "agent", agent.ID, "offered", offered, "protocol", protocol.Version)
		} else {
			g.log.Warn("agent protocol version refused: upgrade the agent", "agent", agent.ID, "err", err, "remote", r.RemoteAddr)
		}
		re := refused(http.StatusBadRequest, "protocol_version", err.Error())
		re.Header = tunnel.RefusalHeader()
		return re
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return refused(http.StatusServiceUnavailable, "shutting_down", "control plane shutting down")
	}
	g.wg.Add(1) // Done when the session ends (session.end)
	g.mu.Unlock()

	// The session outlives the request: nothing of the request (its
	// context, headers, net/http's buffers) is kept once the hello is done
	// and the handler returns.
	ctx, cancel := context.WithCancel(context.Background())
	sess, err := tunnel.Accept(ctx, w, r, g.cfg.Tunnel)
	if err != nil {
		cancel()
		g.wg.Done()
		// The version was checked and the config validated above, so the
		// WebSocket upgrade failed, and its library answered the agent.
		g.log.Warn("tunnel accept failed", "agent", agent.ID, "err", err)
		return nil
	}
	s := &session{g: g, sess: sess, agent: agent, cancel: cancel, done: make(chan struct{}),
		log: g.log.With("agent", agent.ID, "remote", r.RemoteAddr)}
	context.AfterFunc(ctx, s.end)
	s.run(ctx)
	return nil
}

// welcome is the Welcome for a session of protocol version v: v1 agents
// get exactly what a v1 control plane sent them.
func (g *Gateway) welcome(v int, acked uint64) protocol.Welcome {
	w := protocol.Welcome{SessionID: newSessionID(), HeartbeatSeconds: max(1, int(g.cfg.Heartbeat/time.Second)), LastAckedSeq: acked}
	if v >= 2 {
		w.Protocol, w.ControlPlaneVersion = v, g.cfg.Version
	}
	return w
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ses_" + hex.EncodeToString(b[:])
}
