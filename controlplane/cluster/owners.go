package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// claimTimeout bounds a claim's or release's store write.
const claimTimeout = 5 * time.Second

// owners is this replica's claims: each local session and its generation.
type owners struct {
	mu      sync.Mutex
	byConn  map[*fleet.Conn]*claim
	byAgent map[string]*fleet.Conn
}

type claim struct {
	gen     int64
	written protocol.Status // the status last written for the other replicas
	at      time.Time
}

func (o *owners) init() {
	o.byConn = map[*fleet.Conn]*claim{}
	o.byAgent = map[string]*fleet.Conn{}
}

// Claim records cluster-wide that this replica holds conn's agent, newest
// first: another replica holding an older session of it is told to close
// it. Without clustering it does nothing.
func (c *Cluster) Claim(ctx context.Context, conn *fleet.Conn) error {
	if !c.Clustered() {
		return nil
	}
	st, at := conn.Status()
	ami := string(conn.Hello.AMI)
	if !at.IsZero() {
		ami = string(st.AMI)
	}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	gen, err := c.st.ClaimAgent(ctx, store.Owner{
		AgentID: conn.AgentID, ReplicaID: c.cfg.ID, SessionID: conn.SessionID, Since: conn.ConnectedAt,
		Hostname: conn.Hello.Hostname, AgentVersion: conn.Hello.AgentVersion, Protocol: conn.Protocol,
		AsteriskVersion: conn.Hello.AsteriskVersion, AMI: ami, LiveChannels: st.LiveChannels, LiveCalls: st.LiveCalls, StatusAt: at,
	}, Channel, func(gen int64) string { return ownerMessage(conn.AgentID, c.cfg.ID, gen) })
	if err != nil {
		return fmt.Errorf("claim agent %s: %w", conn.AgentID, err)
	}
	c.owners.mu.Lock()
	c.owners.byConn[conn] = &claim{gen: gen, written: st, at: at}
	c.owners.byAgent[conn.AgentID] = conn
	c.owners.mu.Unlock()
	return nil
}

// Release records that conn's session ended, unless a newer claim of the
// agent replaced it.
func (c *Cluster) Release(conn *fleet.Conn) {
	if !c.Clustered() {
		return
	}
	c.owners.mu.Lock()
	cl := c.owners.byConn[conn]
	delete(c.owners.byConn, conn)
	if c.owners.byAgent[conn.AgentID] == conn {
		delete(c.owners.byAgent, conn.AgentID)
	}
	c.owners.mu.Unlock()
	if cl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	if _, err := c.st.ReleaseAgent(ctx, conn.AgentID, cl.gen, Channel, ownerMessage(conn.AgentID, "", cl.gen)); err != nil {
		// The row stays pointing here; once this replica stops beating
		// it stops counting, and the agent's next claim replaces it.
		c.log.Warn("release agent", "agent", conn.AgentID, "err", err)
	}
}

// generation is the claim of the agent's local session, if any.
func (c *Cluster) generation(agentID string) (*fleet.Conn, int64, bool) {
	c.owners.mu.Lock()
	defer c.owners.mu.Unlock()
	conn, ok := c.owners.byAgent[agentID]
	if !ok {
		return nil, 0, false
	}
	return conn, c.owners.byConn[conn].gen, true
}

// supersede closes the local session of agentID if its claim is older
// than gen: the agent connected again (to another replica, or released
// a newer session elsewhere), and the newest connection wins.
func (c *Cluster) supersede(agentID string, gen int64, by string) {
	conn, mine, ok := c.generation(agentID)
	if !ok || mine >= gen {
		return
	}
	c.log.Info("agent connected to another replica; closing this replica's older session",
		"agent", agentID, "session", conn.SessionID, "generation", mine, "newer_generation", gen, "holder", by)
	c.cfg.Observer.Superseded()
	_ = conn.Close()
}

// statusLoop writes, every StatusInterval, the status of local sessions
// that changed since it was last written, for the other replicas' fleet
// view.
func (c *Cluster) statusLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.writeStatus(ctx)
	}
}

// statusKeepalive rewrites an unchanged status this often, so the fleet
// view's status_at and last_seen of a quiet PBX stay recent elsewhere.
const statusKeepalive = time.Minute

func (c *Cluster) writeStatus(ctx context.Context) {
	type change struct {
		cl *claim
		st protocol.Status
		at time.Time
	}
	var (
		out     []store.OwnerStatus
		changes []change
	)
	c.owners.mu.Lock()
	for conn, cl := range c.owners.byConn {
		st, at := conn.Status()
		if at.IsZero() || (sameStatus(st, cl.written) && at.Sub(cl.at) < statusKeepalive) {
			continue
		}
		out = append(out, store.OwnerStatus{AgentID: conn.AgentID, Generation: cl.gen, AgentVersion: st.AgentVersion,
			AsteriskVersion: st.AsteriskVersion, AMI: string(st.AMI), LiveChannels: st.LiveChannels, LiveCalls: st.LiveCalls, StatusAt: at})
		changes = append(changes, change{cl, st, at})
	}
	c.owners.mu.Unlock()
	if len(out) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	if err := c.st.UpdateOwnerStatus(wctx, out); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("write agents' status for the other replicas", "agents", len(out), "err", err)
		}
		return
	}
	c.owners.mu.Lock()
	for _, ch := range changes {
		ch.cl.written, ch.cl.at = ch.st, ch.at
	}
	c.owners.mu.Unlock()
}

// sameStatus compares what the fleet view shows of a status (not its
// time or the agent's pending events, which change every beat).
func sameStatus(a, b protocol.Status) bool {
	return a.AgentVersion == b.AgentVersion && a.AsteriskVersion == b.AsteriskVersion && a.AMI == b.AMI &&
		a.LiveChannels == b.LiveChannels && a.LiveCalls == b.LiveCalls
}
