package amitest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Errors of the Server.
var (
	// ErrClosed is returned by calls on a closed Server.
	ErrClosed = errors.New("amitest: server closed")
	// ErrNoSuchChannel is returned by Hangup for an unknown channel.
	ErrNoSuchChannel = errors.New("amitest: no such channel")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("amitest: server already started")
)

// TB is the part of testing.TB that NewServer needs; the package does not
// import testing because it is also the demo's and load tests' PBX.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Server is a fake Asterisk. Create it with New (then Start) or NewServer.
type Server struct {
	cfg Config
	log *slog.Logger

	ln        net.Listener
	startTime time.Time
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	sched     scheduler

	// mu guards the channel model, the sessions and the knobs below. Lock
	// order: Server.mu before session.mu.
	mu          sync.Mutex
	started     bool
	sessions    map[*session]struct{}
	nextSession uint64
	model       model
	outcomes    map[string]Outcome
	delays      map[string]time.Duration // lower-case action name → delay
	globals     map[string]string

	// actions is the recorded history (bounded), guarded by actMu so
	// recording never waits on the model.
	actMu     sync.Mutex
	actions   []*ami.Message
	actBase   int            // index in the full history of actions[0]
	actCursor map[string]int // WaitAction: next history index per lower-case name
	actSignal chan struct{}  // closed and replaced on every recorded action
}

// New validates cfg, fills its defaults and returns a Server that is not
// listening yet; call Start.
func New(cfg Config) (*Server, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	users := make(map[string]string, len(cfg.Users))
	for k, v := range cfg.Users {
		users[k] = v
	}
	cfg.Users = users
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "amitest"),
		done:      make(chan struct{}),
		sessions:  map[*session]struct{}{},
		outcomes:  map[string]Outcome{},
		delays:    map[string]time.Duration{},
		globals:   map[string]string{},
		actCursor: map[string]int{},
		actSignal: make(chan struct{}),
	}
	s.model.init(cfg.Context)
	return s, nil
}

// NewServer starts a Server on 127.0.0.1:0 and closes it at the end of
// the test. It fails the test if the server cannot start.
func NewServer(tb TB, opts ...Option) *Server {
	tb.Helper()
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("amitest: %v", err)
		return nil
	}
	if err := s.Start(); err != nil {
		tb.Fatalf("amitest: %v", err)
		return nil
	}
	tb.Cleanup(s.Close)
	return s
}

// Start listens on Config.Addr and serves clients until Close.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	if s.started {
		return ErrStarted
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("amitest: listen %s: %w", s.cfg.Addr, err)
	}
	s.started = true
	s.ln = ln
	s.startTime = s.cfg.Now()
	s.sched.init()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.sched.run(s.done, &s.mu) }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	s.log.Debug("listening", "addr", ln.Addr().String())
	return nil
}

// Serve starts the server and blocks until ctx ends, then closes it.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
	s.Close()
	return ctx.Err()
}

// Addr is the listening address, host:port.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops listening, disconnects every client, stops call progress and
// waits for every goroutine the server started. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.sessions {
			c.conn.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) acceptLoop() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if !s.closed() {
				s.log.Error("accept failed", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed() || (s.cfg.MaxConnections > 0 && len(s.sessions) >= s.cfg.MaxConnections) {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		c := s.newSession(conn)
		s.sessions[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go func() { defer s.wg.Done(); c.writeLoop() }()
		go func() { defer s.wg.Done(); c.readLoop() }()
	}
}

// ConnectedClients counts the TCP clients connected right now, logged in
// or not.
func (s *Server) ConnectedClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// DropConnections cuts every client connection abruptly (TCP RST where the
// platform allows), as a crashing or restarting Asterisk would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.sessions {
		if tc, ok := c.conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.conn.Close()
	}
}

// SetOutcome overrides the built-in dialplan for one extension (exact
// match); Dialplan restores it.
func (s *Server) SetOutcome(exten string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o == Dialplan {
		delete(s.outcomes, exten)
		return
	}
	s.outcomes[exten] = o
}

// SetActionDelay delays the handling of every later action named action
// (case-insensitive) by d: its Response, and whatever events it causes,
// come d later. Other actions on the same connection are not held up, so
// a client can time out one action while others succeed. d <= 0 removes
// the delay.
func (s *Server) SetActionDelay(action string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, strings.ToLower(action))
		return
	}
	s.delays[strings.ToLower(action)] = d
}

func (s *Server) actionDelay(action string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delays[strings.ToLower(action)]
}

func (s *Server) outcomeFor(exten string) Outcome {
	if o, ok := s.outcomes[exten]; ok {
		return o
	}
	return Outcome{r: builtinOutcome(exten)}
}

// record keeps a copy of every action received, in order.
func (s *Server) record(m *ami.Message) {
	if s.cfg.MaxRecordedActions < 0 {
		return
	}
	s.actMu.Lock()
	defer s.actMu.Unlock()
	s.actions = append(s.actions, m.Clone())
	// Trim in batches (amortised O(1)): history beyond the limit is let go
	// once it reaches a quarter of it.
	limit := s.cfg.MaxRecordedActions
	if over := len(s.actions) - limit; over > 0 && over >= limit/4 {
		s.actions = append(s.actions[:0:0], s.actions[over:]...)
		s.actBase += over
	}
	close(s.actSignal)
	s.actSignal = make(chan struct{})
}

// Actions returns a copy of every action received so far (at most
// Config.MaxRecordedActions, the latest), in order.
func (s *Server) Actions() []*ami.Message {
	s.actMu.Lock()
	defer s.actMu.Unlock()
	kept := s.actions
	if n := len(kept) - s.cfg.MaxRecordedActions; n > 0 {
		kept = kept[n:]
	}
	out := make([]*ami.Message, len(kept))
	for i, m := range kept {
		out[i] = m.Clone()
	}
	return out
}

// WaitAction returns the next action named name (case-insensitive) that no
// earlier WaitAction for that name returned, waiting for it to arrive
// until ctx ends. So two WaitAction(ctx, "Login") calls return the first
// and the second Login.
func (s *Server) WaitAction(ctx context.Context, name string) (*ami.Message, error) {
	key := strings.ToLower(name)
	for {
		s.actMu.Lock()
		i := max(s.actCursor[key], s.actBase)
		for ; i < s.actBase+len(s.actions); i++ {
			m := s.actions[i-s.actBase]
			if strings.EqualFold(m.Action(), name) {
				s.actCursor[key] = i + 1
				s.actMu.Unlock()
				return m.Clone(), nil
			}
		}
		s.actCursor[key] = i
		sig := s.actSignal
		s.actMu.Unlock()
		select {
		case <-sig:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for action %s: %w", name, ctx.Err())
		case <-s.done:
			return nil, fmt.Errorf("wait for action %s: %w", name, ErrClosed)
		}
	}
}

// emit broadcasts one event to every logged-in session whose mask holds
// its class. Callers hold s.mu, so events leave in model order.
func (s *Server) emit(class eventClass, ev []byte) {
	for c := range s.sessions {
		c.event(class, ev)
	}
}
