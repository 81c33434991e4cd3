// Package gateway is the control plane's end of the agent tunnels: it
// authenticates an agent by its token before the WebSocket upgrade, accepts
// the tunnel, answers Hello with Welcome, registers the connection in the
// fleet registry (a newer connection of the same agent replaces the older),
// records the agent's status, and ingests its event stream — storing each
// batch before acknowledging it, so an acknowledged event is never lost.
//
// It writes no HTTP answer itself: Connect returns a *RefusedError before
// the upgrade, and the api package, which routes GET /agent/v1/connect,
// writes it in text for the agent to log.
//
// A connected agent costs two goroutines, yamux's send and receive loops:
// once the hello is done the HTTP handler returns, and the agent's status
// and events are read by goroutines that run only while it has sent
// something (session.go).
//
// With several replicas, Config.Ownership records each session cluster-wide
// once registered (the newest connection wins; a replica told of a newer
// claim closes its own session) and releases it when it ends.
//
// It also bounds what one agent can cost (Limits): its event rate (past it
// the ack waits, nothing is dropped), the streams it may open and the size
// of its hello and status, and it keeps a session up while the store
// refuses its batches, retrying them unacknowledged (StoreFailing).
package gateway
