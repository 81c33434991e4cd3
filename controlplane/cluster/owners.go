package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// claimTimeout bounds a claim's or release's store write.
const claimTimeout = 10 * time.Second

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
// it. Without clustering it does nothing. Claims made together share one
// transaction and NOTIFY (ownerLoop): a storm of reconnects costs a few
// commits.
func (c *Cluster) Claim(ctx context.Context, conn *fleet.Conn) error {
	if !c.Clustered() {
		return nil
	}
	st, at := conn.Status()
	ami := string(conn.Hello.AMI)
	if !at.IsZero() {
		ami = string(st.AMI)
	}
	op := ownerOp{owner: store.Owner{
		AgentID: conn.AgentID, ReplicaID: c.cfg.ID, SessionID: conn.SessionID, Since: conn.ConnectedAt,
		Hostname: conn.Hello.Hostname, AgentVersion: conn.Hello.AgentVersion, Protocol: conn.Protocol,
		AsteriskVersion: conn.Hello.AsteriskVersion, AMI: ami, LiveChannels: st.LiveChannels, LiveCalls: st.LiveCalls, StatusAt: at,
	}, done: make(chan ownerResult, 1)}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	select {
	case c.ops <- op:
	case <-ctx.Done():
		return fmt.Errorf("claim agent %s: %w", conn.AgentID, ctx.Err())
	}
	var res ownerResult
	select {
	case res = <-op.done:
	case <-ctx.Done():
		return fmt.Errorf("claim agent %s: %w", conn.AgentID, ctx.Err())
	}
	if res.err != nil {
		return fmt.Errorf("claim agent %s: %w", conn.AgentID, res.err)
	}
	c.owners.mu.Lock()
	c.owners.byConn[conn] = &claim{gen: res.gen, written: st, at: at}
	c.owners.byAgent[conn.AgentID] = conn
	c.owners.mu.Unlock()
	return nil
}

// Release records that conn's session ended, unless a newer claim of the
// agent replaced it. It does not wait for the store.
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
	select {
	case c.ops <- ownerOp{release: true, owner: store.Owner{AgentID: conn.AgentID, Generation: cl.gen}}:
	default:
		// The queue is full (a storm): the row keeps pointing here until
		// the agent's next claim replaces it, or this replica deregisters
		// or is counted dead; requests meanwhile find no session here and
		// answer 503.
		c.log.Warn("release queue full; the agent's row is released by its next claim", "agent", conn.AgentID)
	}
}

// ownerOps bounds the claims and releases waiting for ownerLoop;
// ownerBatch the ones written in one transaction.
const (
	ownerOps   = 4096
	ownerBatch = 500
)

type ownerOp struct {
	release bool
	owner   store.Owner // AgentID and Generation only, for a release
	done    chan ownerResult
}

type ownerResult struct {
	gen int64
	err error
}

// ownerLoop writes queued claims and releases, as many at once as are
// waiting (up to ownerBatch), until ctx ends; what is still queued then
// fails.
func (c *Cluster) ownerLoop(ctx context.Context) {
	for {
		var batch []ownerOp
		select {
		case <-ctx.Done():
			for {
				select {
				case op := <-c.ops:
					if op.done != nil {
						op.done <- ownerResult{err: errors.New("replica stopping")}
					}
				default:
					return
				}
			}
		case op := <-c.ops:
			batch = append(batch, op)
		}
	drain:
		for len(batch) < ownerBatch {
			select {
			case op := <-c.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		c.writeOwners(ctx, batch)
	}
}

// writeOwners writes a batch: its claims in one transaction (an agent
// claimed twice in it, a quick reconnect, in the next), then its releases.
func (c *Cluster) writeOwners(ctx context.Context, batch []ownerOp) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	var claims, again []ownerOp
	var releases []store.Release
	seen := map[string]bool{}
	for _, op := range batch {
		switch {
		case op.release:
			releases = append(releases, store.Release{AgentID: op.owner.AgentID, Generation: op.owner.Generation})
		case seen[op.owner.AgentID]:
			again = append(again, op)
		default:
			seen[op.owner.AgentID] = true
			claims = append(claims, op)
		}
	}
	if len(claims) > 0 {
		owners := make([]store.Owner, len(claims))
		for i, op := range claims {
			owners[i] = op.owner
		}
		gens, err := c.st.ClaimAgents(wctx, owners, Channel, func(agent string, gen int64) string { return ownerMessage(agent, c.cfg.ID, gen) })
		for i, op := range claims {
			r := ownerResult{err: err}
			if err == nil {
				r.gen = gens[i]
			}
			op.done <- r
		}
	}
	if len(releases) > 0 {
		if _, err := c.st.ReleaseAgents(wctx, releases, Channel, func(agent string, gen int64) string { return ownerMessage(agent, "", gen) }); err != nil && ctx.Err() == nil {
			// The rows keep pointing here until the agents' next claims, or
			// until this replica deregisters or is counted dead.
			c.log.Warn("release agents", "agents", len(releases), "err", err)
		}
	}
	if len(again) > 0 {
		c.writeOwners(ctx, again)
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
