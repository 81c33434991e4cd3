package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// session is one connected agent. Its hello runs on the HTTP handler's
// goroutine, which then returns: from there on a session has no goroutine
// of its own. Its control and events streams are read by readers that
// run only while the agent has sent something (watch), its Status
// deadline is a timer, and end runs once, on a goroutine of its own, when
// ctx is cancelled: by the first failure (fail), by Close, or because the
// tunnel ended (its streams' readers fail). With yamux's send and receive
// loops that is two goroutines per idle agent instead of four: a
// goroutine parked in a read keeps a stack of 8 KiB or more, 160 MB for
// 10,000 agents.
type session struct {
	g      *Gateway
	sess   *tunnel.Session
	agent  store.Agent
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{} // closed by end

	// conn is set, under g.mu, once the session is registered.
	conn *fleet.Conn
	// claimed says Config.Ownership recorded the session (register).
	claimed bool

	firstMu  sync.Mutex
	firstErr error

	// runMu guards ended and statusTimer; runs counts readers running.
	runMu       sync.Mutex
	ended       bool
	runs        sync.WaitGroup
	statusTimer *time.Timer

	// Only the status reader uses these.
	lastTouch time.Time
	statusLog *slog.Logger // nil once a cut field was logged
}

// fail records err as the reason the session ends, if it is the first,
// and ends the session.
func (s *session) fail(err error) {
	s.firstMu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.firstMu.Unlock()
	s.cancel()
}

// run serves the session: the hello, then the readers. It returns once
// they are set up, or the session failed (end runs when ctx ends).
func (s *session) run(ctx context.Context) {
	ctrl, hello, welcome, err := s.hello(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	if err := s.register(ctx, hello, welcome); err != nil {
		s.fail(err)
		return
	}
	s.lastTouch, s.statusLog = s.g.cfg.Now(), s.log // register marked the connect
	s.runMu.Lock()
	if !s.ended {
		s.statusTimer = time.AfterFunc(s.g.cfg.StatusTimeout, func() {
			s.fail(fmt.Errorf("no status from the agent for %v: %w", s.g.cfg.StatusTimeout, ErrAgentSilent))
		})
	}
	s.runMu.Unlock()
	if err := s.watch(ctrl, func() error { return s.readStatus(ctrl) }); err != nil {
		s.fail(err)
		return
	}
	in, err := s.acceptEvents(ctx, hello, welcome.LastAckedSeq)
	if err != nil {
		s.fail(err)
		return
	}
	if err := s.watch(in.st, func() error { return in.step(ctx) }); err != nil {
		s.fail(err)
	}
}

// hello accepts the control stream, reads the agent's Hello and answers
// its Welcome.
func (s *session) hello(ctx context.Context) (net.Conn, protocol.Hello, protocol.Welcome, error) {
	g := s.g
	var hello protocol.Hello
	// Hello arrives on the first stream, which must be the control stream.
	helloCtx, helloCancel := context.WithTimeout(ctx, g.cfg.HelloTimeout)
	ctrl, kind, err := s.sess.Accept(helloCtx)
	helloCancel()
	if err != nil {
		return nil, hello, protocol.Welcome{}, fmt.Errorf("accept control stream: %w", err)
	}
	if kind != protocol.StreamControl {
		return nil, hello, protocol.Welcome{}, fmt.Errorf("first stream is %v, want control", kind)
	}
	_ = ctrl.SetReadDeadline(time.Now().Add(g.cfg.HelloTimeout))
	if err := protocol.ReadFrame(ctrl, &hello, g.cfg.MaxControlFrameBytes); err != nil {
		g.countTooLarge(err)
		return nil, hello, protocol.Welcome{}, fmt.Errorf("read hello: %w", err)
	}
	_ = ctrl.SetReadDeadline(time.Time{})
	g.boundHello(&hello, s.log)
	// The upgrade request agreed the version (tunnel.CheckVersion); a
	// hello that says otherwise is a broken agent.
	if hello.Protocol != s.sess.Protocol() {
		return nil, hello, protocol.Welcome{}, fmt.Errorf("agent hello speaks protocol %d, its upgrade request offered %d", hello.Protocol, s.sess.Protocol())
	}
	acked, err := g.cfg.Store.AgentAckedSeq(ctx, s.agent.ID)
	if err != nil {
		return nil, hello, protocol.Welcome{}, fmt.Errorf("read acked sequence: %w", err)
	}
	welcome := g.welcome(s.sess.Protocol(), uint64(acked))
	if err := protocol.WriteFrame(ctrl, welcome); err != nil {
		return nil, hello, protocol.Welcome{}, fmt.Errorf("write welcome: %w", err)
	}
	return ctrl, hello, welcome, nil
}

// register makes the session live: in Close's list, claimed cluster-wide
// (Config.Ownership), in the registry, and its connect time written.
func (s *session) register(ctx context.Context, hello protocol.Hello, welcome protocol.Welcome) error {
	g := s.g
	now := g.cfg.Now()
	conn := fleet.NewConn(s.agent.ID, s.agent.EnterpriseID, s.sess, hello, now)
	conn.SessionID = welcome.SessionID
	g.mu.Lock()
	if g.closed {
		// Close began during the hello and did not see this session.
		g.mu.Unlock()
		return errClosing
	}
	g.live[conn] = liveSession{cancel: s.cancel, done: s.done}
	g.mu.Unlock()
	conn.Replica = g.cfg.Replica
	if g.cfg.Ownership != nil {
		// Recorded before it is registered: once a request can reach the
		// agent here, every replica can find it here.
		if err := g.cfg.Ownership.Claim(ctx, conn); err != nil {
			g.mu.Lock()
			delete(g.live, conn)
			g.mu.Unlock()
			return fmt.Errorf("record this replica as the agent's holder: %w", err)
		}
		s.claimed = true
	}
	g.mu.Lock()
	s.conn = conn
	g.mu.Unlock()
	g.cfg.Registry.Register(conn) // logs the replacement of an older connection
	g.cfg.Observer.AgentConnected()
	waitSeen(g.markSeen(s.agent.ID, now))
	s.log.Info("agent connected", "session", welcome.SessionID, "agent_version", hello.AgentVersion, "protocol", conn.Protocol,
		"hostname", hello.Hostname, "asterisk", hello.AsteriskVersion, "ami", hello.AMI, "last_acked_seq", welcome.LastAckedSeq)
	return nil
}

// acceptEvents waits for the agent's events stream. An agent opens one
// per session; any other stream ends the session: each could hold a
// stream window (256 KiB) that nobody reads. Streams opened after the
// events stream wait in yamux's accept backlog (Limits.StreamBacklog;
// more are reset) until the session ends.
func (s *session) acceptEvents(ctx context.Context, hello protocol.Hello, acked uint64) (*ingestor, error) {
	st, kind, err := s.sess.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept stream: %w", err)
	}
	if kind != protocol.StreamEvents {
		s.g.cfg.Observer.AgentProtocolError("unexpected_stream")
		_ = st.Close()
		return nil, fmt.Errorf("agent opened a %v stream; agents open only control and events", kind)
	}
	return s.g.newIngestor(st, s.agent, hello, acked, s.log), nil
}

// readStatus reads the Status frames the agent has sent. One must arrive
// within StatusTimeout of the previous one (statusTimer): the agent sends
// one every heartbeat, so a longer silence means it vanished (a PBX that
// lost power behind a NAT sends no FIN). This replaces the control
// plane's own yamux keepalive.
func (s *session) readStatus(ctrl net.Conn) error {
	g := s.g
	rs := ctrl.(tunnel.Stream) // watch checked
	for {
		if n, done := rs.ReadReady(); n == 0 && !done {
			rs.Shrink()
			return nil
		}
		var st protocol.Status
		if err := protocol.ReadFrame(ctrl, &st, g.cfg.MaxControlFrameBytes); err != nil {
			g.countTooLarge(err)
			return fmt.Errorf("read status: %w", err)
		}
		if g.boundStatus(&st, s.statusLog) {
			s.statusLog = nil // logged once per session; the metric counts every one
		}
		now := g.cfg.Now()
		s.runMu.Lock()
		if s.statusTimer != nil {
			s.statusTimer.Reset(g.cfg.StatusTimeout)
		}
		s.runMu.Unlock()
		s.conn.SetStatus(st, now)
		// The registry has the live status; the store's copy is for
		// after a disconnect or a crash (see Config.LastSeenInterval).
		if now.Sub(s.lastTouch) >= g.cfg.LastSeenInterval {
			s.lastTouch = now
			g.markSeen(s.agent.ID, now)
		}
	}
}

// Reader states of watch.
const (
	readerIdle    = iota
	readerRunning // a goroutine runs read
	readerAgain   // and more arrived meanwhile: it runs read again
)

// watch runs read on a goroutine of its own whenever st has something to
// read or has ended, one run at a time. read reads what is there and
// returns nil once nothing more is buffered; its error ends the session,
// and st is not read again.
func (s *session) watch(st net.Conn, read func() error) error {
	ts, ok := st.(tunnel.Stream)
	if !ok {
		return fmt.Errorf("stream %T cannot notify its reader", st)
	}
	var state atomic.Int32
	loop := func() {
		defer s.runs.Done()
		for {
			if err := read(); err != nil {
				s.fail(err)
				return // state stays running: no more runs
			}
			if state.CompareAndSwap(readerRunning, readerIdle) {
				return
			}
			state.Store(readerRunning) // it was readerAgain
		}
	}
	ts.SetNotify(func() {
		for {
			switch state.Load() {
			case readerIdle:
				if state.CompareAndSwap(readerIdle, readerRunning) {
					if s.startRun() {
						go loop()
					}
					return
				}
			case readerRunning:
				if state.CompareAndSwap(readerRunning, readerAgain) {
					return
				}
			default:
				return
			}
		}
	})
	return nil
}

// startRun admits one more reader run unless the session has ended.
func (s *session) startRun() bool {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.ended {
		return false
	}
	s.runs.Add(1)
	return true
}

// end tears the session down once ctx is cancelled: the tunnel first,
// then, once its readers have returned, the registry, the metrics and
// the last-seen time.
func (s *session) end() {
	g := s.g
	defer g.wg.Done()
	s.runMu.Lock()
	s.ended = true
	if s.statusTimer != nil {
		s.statusTimer.Stop()
	}
	s.runMu.Unlock()
	_ = s.sess.Close()
	s.runs.Wait()
	g.mu.Lock()
	conn := s.conn
	if conn != nil {
		delete(g.live, conn)
	}
	closing := g.closed
	g.mu.Unlock()
	if conn != nil {
		g.cfg.Observer.AgentDisconnected()
		g.cfg.Registry.Unregister(conn)
		if s.claimed && !closing {
			// On Close the replica deregisters, releasing every claim in
			// one statement.
			g.cfg.Ownership.Release(conn)
		}
		written := g.markSeen(s.agent.ID, g.cfg.Now()) // the agent was here until now
		if !closing {
			waitSeen(written) // Close writes it at its end
		}
	}
	s.firstMu.Lock()
	err := s.firstErr
	s.firstMu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Info("agent session ended", "err", err)
	} else {
		s.log.Info("agent session ended")
	}
	close(s.done)
}
