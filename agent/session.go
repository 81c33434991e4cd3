package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// errControlClosed: the control plane ended the control stream, which it
// only does when it drops the session.
var errControlClosed = errors.New("control stream closed by the control plane")

// tunnelLoop keeps one session with the control plane up until ctx ends:
// dial, run, and after a failure redial with capped, jittered backoff that
// starts over once a session has been healthy for HealthyAfter.
func (a *Agent) tunnelLoop(ctx context.Context) error {
	bo := newBackoff(a.cfg.ReconnectMin, a.cfg.ReconnectMax)
	for {
		start := a.cfg.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if a.cfg.Now().Sub(start) >= a.cfg.HealthyAfter {
			bo.reset()
		}
		delay := bo.next()
		switch {
		case errors.Is(err, tunnel.ErrUnauthorized):
			// Retrying soon will not help; an admin must act. Keep
			// trying slowly so a re-enabled token reconnects by itself.
			delay = a.cfg.ReconnectMax
			a.tlog.Error("control plane refused the agent token", "err", err, "retry_in", delay)
		case errors.Is(err, tunnel.ErrProtocolVersion):
			// Dial already tried the control plane's version if this agent
			// speaks it: the two share none.
			delay = a.cfg.ReconnectMax
			a.tlog.Error("control plane speaks no protocol version this agent speaks: upgrade the older side",
				"agent_protocols", fmt.Sprintf("%d-%d", protocol.MinVersion, protocol.Version),
				"control_plane_protocol", serverProtocol(err), "err", err, "retry_in", delay)
		default:
			a.tlog.Warn("tunnel down", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session runs one tunnel session until it fails or ctx ends.
func (a *Agent) session(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dc := a.cfg.Tunnel
	// The tunnel package scopes its logger with component=tunnel itself.
	dc.URL, dc.Token, dc.RootCAs, dc.Logger = a.servers.next(), a.cfg.Token, a.cfg.RootCAs, a.cfg.Logger
	dc.UserAgent = "switchboard-agent/" + a.cfg.Version
	if dc.HandshakeTimeout == 0 {
		dc.HandshakeTimeout = a.cfg.HelloTimeout
	}
	sess, err := tunnel.Dial(ctx, dc)
	if err != nil {
		return fmt.Errorf("dial control plane %s: %w", dc.URL, err)
	}
	defer sess.Close()
	a.noteProtocol(sess.Protocol())

	ctl, welcome, err := a.hello(ctx, sess)
	if err != nil {
		return err
	}
	defer ctl.Close()
	resumeAfter, renumbered := a.outbox.Rebase(welcome.LastAckedSeq)
	heartbeat := a.cfg.HeartbeatInterval
	if welcome.HeartbeatSeconds > 0 {
		heartbeat = time.Duration(welcome.HeartbeatSeconds) * time.Second
	}
	up := []any{"server", dc.URL, "session", welcome.SessionID, "protocol", sess.Protocol(), "last_acked_seq", welcome.LastAckedSeq,
		"resume_after", resumeAfter, "renumbered", renumbered, "pending", a.outbox.Len(), "heartbeat", heartbeat}
	if sess.Protocol() >= 2 {
		// A v1 control plane does not name its build.
		up = append(up, "control_plane_version", welcome.ControlPlaneVersion)
	}
	a.tlog.Info("tunnel up", up...)

	g, gctx := errgroup.WithContext(ctx)
	// Blocked reads and writes on the streams end when the session does.
	stop := context.AfterFunc(gctx, func() { _ = sess.Close() })
	defer stop()
	g.Go(func() error {
		return tunnel.ServeRequests(gctx, sess, a.handler.Serve, tunnel.ServeConfig{
			MaxInFlight: a.cfg.MaxConcurrentRequests,
			Logger:      a.cfg.Logger,
		})
	})
	g.Go(func() error { return a.sendStatus(gctx, ctl, heartbeat) })
	g.Go(func() error { return a.watchControl(ctl) })
	g.Go(func() error { return a.streamEvents(gctx, sess, resumeAfter) })
	err = g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// noteProtocol logs, once per change, that the control plane is older than
// this agent: the fleet is being upgraded, and this agent works as the
// older version until the control plane is upgraded too (every dial offers
// protocol.Version first).
func (a *Agent) noteProtocol(v int) {
	if v == a.protocol {
		return
	}
	prev := a.protocol
	a.protocol = v
	switch {
	case v < protocol.Version:
		a.tlog.Info("control plane speaks an older protocol: working as that version until it is upgraded",
			"protocol", v, "agent_protocol", protocol.Version)
	case prev != 0:
		a.tlog.Info("control plane upgraded: working as this agent's protocol again", "protocol", v)
	}
}

// serverProtocol is the version an older or newer control plane named
// when it refused ours, or 0.
func serverProtocol(err error) int {
	var he *tunnel.HandshakeError
	if errors.As(err, &he) {
		return he.ServerProtocol
	}
	return 0
}

// hello opens the control stream, sends Hello and reads Welcome, all
// within HelloTimeout.
func (a *Agent) hello(ctx context.Context, sess *tunnel.Session) (net.Conn, protocol.Welcome, error) {
	var welcome protocol.Welcome
	hctx, cancel := context.WithTimeout(ctx, a.cfg.HelloTimeout)
	defer cancel()
	ctl, err := sess.Open(hctx, protocol.StreamControl)
	if err != nil {
		return nil, welcome, err
	}
	deadline, _ := hctx.Deadline()
	_ = ctl.SetDeadline(deadline)
	st := a.Status()
	// The session's version, which Dial agreed with the control plane:
	// an older control plane gets the hello of its version. The version
	// says which ops this agent has; Capabilities only name what is not
	// an op, to control planes of version 2 or later (a version 1 one
	// never refuses a frame in an ack).
	hello := protocol.Hello{
		Protocol:        sess.Protocol(),
		AgentVersion:    a.cfg.Version,
		Hostname:        a.cfg.Hostname,
		AsteriskVersion: st.AsteriskVersion,
		AMI:             st.AMI,
		Context:         a.cfg.Context,
	}
	if hello.Protocol >= 2 {
		hello.Capabilities = []string{protocol.CapEventRefusal}
	}
	if err := protocol.WriteFrame(ctl, hello); err != nil {
		ctl.Close()
		return nil, welcome, fmt.Errorf("send hello: %w", err)
	}
	if err := protocol.ReadFrame(ctl, &welcome, 0); err != nil {
		ctl.Close()
		return nil, welcome, fmt.Errorf("read welcome: %w", err)
	}
	_ = ctl.SetDeadline(time.Time{})
	return ctl, welcome, nil
}

// sendStatus sends Status at once, then every heartbeat and whenever the
// AMI state changes.
func (a *Agent) sendStatus(ctx context.Context, ctl net.Conn, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		// I/O deadlines are real time, whatever clock Config.Now injects.
		_ = ctl.SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout))
		if err := protocol.WriteFrame(ctl, a.Status()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("send status: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-a.statusKick:
		}
	}
}

// watchControl reads the control stream, on which the control plane sends
// nothing after Welcome: its end means the control plane dropped us.
func (a *Agent) watchControl(ctl net.Conn) error {
	var discard json.RawMessage
	for {
		if err := protocol.ReadFrame(ctl, &discard, 0); err != nil {
			return fmt.Errorf("%w: %w", errControlClosed, err)
		}
	}
}
