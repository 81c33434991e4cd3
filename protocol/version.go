package protocol

// Version is the agent↔control-plane protocol version this build speaks.
//
// History (one line per bump, never rewritten):
//
//	1 (2026-11-24): hello/welcome, status, typed requests (originate, hangup,
//	                monitor, channels, status, ping), numbered events with acks.
const Version = 1

// VersionHeader carries the agent's protocol version on the WebSocket
// upgrade request, so a control plane that cannot speak it answers with a
// clear HTTP error before any tunnel is set up.
const VersionHeader = "Switchboard-Protocol"

// ConnectPath is where the control plane accepts agent tunnels.
const ConnectPath = "/agent/v1/connect"
