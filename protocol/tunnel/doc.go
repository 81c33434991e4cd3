// Package tunnel carries the agent↔control-plane protocol over one
// WebSocket (binary messages) with a yamux session inside it: the agent
// dials out (Dial, yamux client), the control plane upgrades (Accept, yamux
// server), and either side opens typed streams (Session.Open) whose first
// byte is a protocol.StreamKind.
//
// The protocol version is agreed on the upgrade request, before any tunnel
// exists: Dial offers the agent's version in protocol.VersionHeader, Accept
// takes any version in [protocol.MinVersion, protocol.Version] and answers
// any other with 400 and its own newest version (RefuseVersion). Dial then
// redials once, at once, with that version if the agent speaks it, so an
// agent newer than its control plane connects as the older version.
// Session.Protocol is the agreed version on both ends.
//
// It is the only package in the module that imports
// github.com/hashicorp/yamux, and the only one that uses
// github.com/coder/websocket for the agent tunnel (the control plane's
// /v1/events stream and its `switchboard events tail` client use it too;
// internal/depcheck holds the rule). Everything else sees a *Session and
// net.Conn streams. ServeRequests is the agent's side of
// request streams: accept, decode protocol.Request, run a handler under the
// request's deadline, answer with protocol.Response.
package tunnel
