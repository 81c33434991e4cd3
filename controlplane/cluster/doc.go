// Package cluster lets several control-plane replicas (`switchboard
// serve`) share one PostgreSQL, in the shape of coder's replicasync and
// pgcoord and Teleport's proxy peering, with PostgreSQL as the only
// coordinator: no cluster protocol of our own.
//
//   - Every replica heartbeats a row (store.RegisterReplica); one that
//     missed MissedBeats beats is dead. A replica without clustering
//     refuses to start beside a live one, and a clustered one beside an
//     unclustered one.
//   - Which replica holds each agent's tunnel is a row too
//     (store.ClaimAgents), with a generation: the newest connection wins
//     cluster-wide, and a replica told (NOTIFY) of a newer claim closes its
//     older session at once.
//   - Requests go to the owner: Call (a fleet.Caller) runs a request on a
//     local tunnel, or forwards it once to the replica holding the agent
//     over an authenticated internal call (POST /cluster/v1/call, signed
//     with a key derived from the cluster secret), carrying the deadline
//     and the request id. It is never re-sent after the owner may have run
//     it; a dead or unreachable owner is a fast *fleet.ReplicaError.
//   - The fleet view (Directory) shows local sessions live and the other
//     replicas' from their rows, refreshed every Refresh.
//   - Events (Broker) are still stored by the owner with their ack; other
//     replicas learn of each batch from a NOTIFY carrying (enterprise,
//     first, last) only, batched over NotifyDelay, and read the events
//     from the store. A missed NOTIFY (the LISTEN connection dropped, a
//     replica died before sending it) is caught by comparing each
//     enterprise's latest sequence every Refresh: subscribers then read the
//     gap from the store. Nothing is lost silently.
//   - Share is the number of live replicas: the rate limiter divides each
//     credential's rate by it.
//
// Without a cluster secret the same type runs a lone replica: its
// heartbeat row, and nothing else. SQLite refuses clustering.
//
// Only controlplane (the assembly) imports this package; the api package
// reaches it through small interfaces.
package cluster
