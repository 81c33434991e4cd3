// Package fleet owns the control plane's view of connected agents: the
// Registry of live tunnels ("which PBXs are connected to this process"),
// one Conn per agent (a newer connection replaces an older one), and
// request routing: Call opens a request stream to the agent, sends a
// protocol.Request carrying the caller's deadline and decodes the
// protocol.Response.
//
// Each Conn carries the protocol version of its tunnel (Conn.Protocol): an
// op introduced by a newer version (protocol.OpMinVersion) is refused by
// Call with protocol.ErrCodeAgentTooOld, never sent, and the tunnel keeps
// serving the rest.
//
// An agent that is not connected is ErrOffline at once: a request is
// never queued and never routed to another PBX. Code outside this package
// depends on the small Caller and Directory interfaces: with several
// replicas, the cluster package implements both (a request is forwarded to
// the replica holding the agent's tunnel; another replica's session is a
// view, NewView, with the holder in Conn.Replica), and a holder that is
// dead or unreachable is a *ReplicaError, which matches ErrOffline.
package fleet
