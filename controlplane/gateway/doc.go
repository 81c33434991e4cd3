// Package gateway is the control plane's end of the agent tunnels: it
// authenticates an agent by its token before the WebSocket upgrade, accepts
// the tunnel, answers Hello with Welcome, registers the connection in the
// fleet registry (a newer connection of the same agent replaces the older),
// records the agent's status, and ingests its event stream — storing each
// batch before acknowledging it, so an acknowledged event is never lost.
package gateway
