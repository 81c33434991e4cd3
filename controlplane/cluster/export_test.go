package cluster

// SetRemoteOwner makes c believe, until its next refresh or NOTIFY about
// the agent, that replica holds it (a view gone stale).
func SetRemoteOwner(c *Cluster, agentID, replica string, gen int64) {
	c.remote.mu.Lock()
	defer c.remote.mu.Unlock()
	c.remote.agents[agentID] = remoteAgent{replica: replica, gen: gen}
}

// RemoteOwner is the replica c's view says holds the agent ("" if none).
func RemoteOwner(c *Cluster, agentID string) string {
	c.remote.mu.RLock()
	defer c.remote.mu.RUnlock()
	return c.remote.agents[agentID].replica
}

// Range is an announced event range: its enterprise and sequences.
type Range struct{ Enterprise, First, Last int64 }

// TraceStages has f told when a replica moves event ranges through a
// stage of the cross-replica path (see traceStage); nil stops it.
func TraceStages(f func(replica, stage string, rs []Range)) {
	if f == nil {
		traceStage.Store(nil)
		return
	}
	g := func(replica, stage string, rs []eventRange) {
		out := make([]Range, len(rs))
		for i, r := range rs {
			out[i] = Range{r.enterprise, r.first, r.last}
		}
		f(replica, stage, out)
	}
	traceStage.Store(&g)
}
