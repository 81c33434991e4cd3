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
