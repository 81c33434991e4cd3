package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// remoteView is what this replica knows of the agents other replicas
// hold: read from their rows every Refresh, and kept current between
// reads by the claims and releases they NOTIFY.
type remoteView struct {
	mu     sync.RWMutex
	agents map[string]remoteAgent
}

type remoteAgent struct {
	replica string
	gen     int64
	view    *fleet.Conn
	row     store.Owner // what view shows (zero when it came from a NOTIFY)
	// gone is when a refresh first found replica no longer live: the
	// entry is kept until DeadAfter past it (see keepGone).
	gone time.Time
}

// sameRow reports whether two reads of an agent's row show the same
// session and status. Times are compared as instants (a read back may
// differ in location or monotonic reading), every other field with ==.
func sameRow(a, b store.Owner) bool {
	if !a.Since.Equal(b.Since) || !a.StatusAt.Equal(b.StatusAt) {
		return false
	}
	a.Since, a.StatusAt = b.Since, b.StatusAt
	return a == b
}

func (v *remoteView) init() { v.agents = map[string]remoteAgent{} }

var _ fleet.Directory = (*Cluster)(nil)

// Get returns the agent's session: this replica's own, or a view of the
// one a live replica holds. An agent is connected only when it holds a
// session on a live replica.
func (c *Cluster) Get(agentID string) (*fleet.Conn, bool) {
	if conn, ok := c.reg.Get(agentID); ok || !c.Clustered() {
		return conn, ok
	}
	c.remote.mu.RLock()
	ra, ok := c.remote.agents[agentID]
	c.remote.mu.RUnlock()
	if !ok || ra.view == nil {
		return nil, false
	}
	if _, live := c.replica(ra.replica); !live {
		return nil, false
	}
	return ra.view, true
}

// List returns every connected agent's session, by agent id.
func (c *Cluster) List() []*fleet.Conn {
	out := c.reg.List()
	if !c.Clustered() {
		return out
	}
	c.remote.mu.RLock()
	for id, ra := range c.remote.agents {
		if _, local := c.reg.Get(id); local || ra.view == nil {
			continue
		}
		if _, live := c.replica(ra.replica); live {
			out = append(out, ra.view)
		}
	}
	c.remote.mu.RUnlock()
	slices.SortFunc(out, func(a, b *fleet.Conn) int { return strings.Compare(a.AgentID, b.AgentID) })
	return out
}

// Len is the number of connected agents, cluster-wide.
func (c *Cluster) Len() int {
	n := c.reg.Len()
	if !c.Clustered() {
		return n
	}
	c.remote.mu.RLock()
	defer c.remote.mu.RUnlock()
	for id, ra := range c.remote.agents {
		if _, live := c.replica(ra.replica); !live || ra.view == nil {
			continue
		}
		if _, local := c.reg.Get(id); !local {
			n++
		}
	}
	return n
}

// refreshLoop reads the other replicas' agents every Refresh, and checks
// that subscribers here missed no event batch (see Broker.resync).
func (c *Cluster) refreshLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Refresh)
	defer t.Stop()
	for {
		c.refresh(ctx)
		c.broker.resync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh replaces the remote view by the live replicas' rows, and closes
// a local session whose agent a newer claim elsewhere took (a NOTIFY that
// never came).
func (c *Cluster) refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Refresh)
	defer cancel()
	// The replicas first: one that started since the last beat, and whose
	// announcement this replica missed, is read too.
	if err := c.refreshLive(rctx); err != nil && ctx.Err() == nil {
		c.log.Warn("read live replicas", "err", err)
	}
	peers := c.peers()
	ids := make([]string, len(peers))
	names := make(map[string]string, len(peers))
	for i, p := range peers {
		ids[i], names[p.ID] = p.ID, p.URL
	}
	rows, err := c.st.HeldAgents(rctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("read the other replicas' agents", "err", err)
		}
		return
	}
	agents := make(map[string]remoteAgent, len(rows))
	// The current map is read under the lock: claims announced meanwhile
	// (onOwner, owner) write to it.
	c.remote.mu.RLock()
	for _, o := range rows {
		ra := remoteAgent{replica: o.ReplicaID, gen: o.Generation, row: o}
		// An unchanged row keeps its view: the fleet view's encoded rows
		// are cached per view (and 10,000 new views every Refresh are
		// garbage).
		if p, ok := c.remote.agents[o.AgentID]; ok && p.view != nil && sameRow(p.row, o) {
			ra.view = p.view
		} else {
			ra.view = viewOf(o, names[o.ReplicaID])
		}
		agents[o.AgentID] = ra
	}
	c.keepGone(agents)
	c.remote.mu.RUnlock()
	c.remote.mu.Lock()
	c.remote.agents = agents
	c.remote.mu.Unlock()
	for _, o := range rows {
		c.supersede(o.AgentID, o.Generation, o.ReplicaID)
	}
}

// keepGone carries into agents (the new view, built from the live
// replicas' rows) the entries of agents whose holder is no longer live
// and that have not connected anywhere since, for DeadAfter after the
// refresh that first saw the holder gone. Requests for them are then
// refused at once (the holder is not live: 503 with Retry-After) instead
// of asking the store who holds them, which is what every request for a
// stopped replica's PBXs did while thousands of them reconnected and the
// store was slowest. Afterwards the store is asked again (a PBX that
// stays away is "not connected"). Call it with remote.mu read-locked.
func (c *Cluster) keepGone(agents map[string]remoteAgent) {
	now := c.cfg.Now()
	for id, ra := range c.remote.agents {
		if _, held := agents[id]; held {
			continue
		}
		if _, live := c.replica(ra.replica); live {
			continue // released by a live replica: not kept
		}
		if ra.gone.IsZero() {
			ra.gone = now
		}
		if now.Sub(ra.gone) < c.cfg.DeadAfter() {
			agents[id] = ra
		}
	}
}

// viewOf describes a row's session for the fleet view.
func viewOf(o store.Owner, replica string) *fleet.Conn {
	hello := protocol.Hello{Protocol: o.Protocol, AgentVersion: o.AgentVersion, Hostname: o.Hostname,
		AsteriskVersion: o.AsteriskVersion, AMI: protocol.AMIState(o.AMI)}
	st := protocol.Status{AgentVersion: o.AgentVersion, AsteriskVersion: o.AsteriskVersion, AMI: protocol.AMIState(o.AMI),
		LiveChannels: o.LiveChannels, LiveCalls: o.LiveCalls, Time: o.StatusAt}
	return fleet.NewView(o.AgentID, o.SessionID, replica, hello, o.Since, st, o.StatusAt)
}

// onOwner applies a claim or release another replica announced.
func (c *Cluster) onOwner(m message) {
	if m.replica == c.cfg.ID {
		return // our own claim
	}
	c.remote.mu.Lock()
	cur, known := c.remote.agents[m.agent]
	switch {
	case known && cur.gen > m.gen:
		// An older message than what we know.
	case m.replica == "":
		delete(c.remote.agents, m.agent)
	default:
		// Routed to the new holder and shown connected at once; its
		// details (versions, AMI state, calls) come with the next refresh.
		ra := remoteAgent{replica: m.replica, gen: m.gen}
		if known && cur.view != nil && cur.replica == m.replica {
			ra.view = cur.view
		} else {
			ra.view = fleet.NewView(m.agent, "", c.nameOf(m.replica), protocol.Hello{}, time.Time{}, protocol.Status{}, time.Time{})
		}
		c.remote.agents[m.agent] = ra
	}
	c.remote.mu.Unlock()
	c.supersede(m.agent, m.gen, m.replica)
}

// owner is where a request for agentID goes: this replica's session, or
// the live replica that holds it. fresh reads the store rather than the
// view (after the view's holder said it no longer holds the agent).
func (c *Cluster) owner(ctx context.Context, agentID string, fresh bool) (store.Owner, error) {
	if !fresh {
		c.remote.mu.RLock()
		ra, ok := c.remote.agents[agentID]
		c.remote.mu.RUnlock()
		if ok {
			return store.Owner{AgentID: agentID, ReplicaID: ra.replica, Generation: ra.gen}, nil
		}
	}
	o, err := c.st.OwnerOf(ctx, agentID)
	if err != nil {
		return store.Owner{}, err
	}
	if o.ReplicaID != "" && o.ReplicaID != c.cfg.ID {
		c.remote.mu.Lock()
		if cur, ok := c.remote.agents[agentID]; !ok || cur.gen < o.Generation {
			c.remote.agents[agentID] = remoteAgent{replica: o.ReplicaID, gen: o.Generation, view: viewOf(o, c.nameOf(o.ReplicaID)), row: o}
		}
		c.remote.mu.Unlock()
	}
	return o, nil
}

// goneName names a replica that is no longer live for an error about
// agentID: the URL its view of the agent was made with, when it has one
// (the live list no longer has it), else its id.
func (c *Cluster) goneName(agentID, replicaID string) string {
	c.remote.mu.RLock()
	ra, ok := c.remote.agents[agentID]
	c.remote.mu.RUnlock()
	if ok && ra.replica == replicaID && ra.view != nil && ra.view.Replica != "" {
		return ra.view.Replica
	}
	return c.nameOf(replicaID)
}

func (c *Cluster) nameOf(replicaID string) string {
	if r, ok := c.replica(replicaID); ok && r.URL != "" {
		return r.URL
	}
	return replicaID
}
