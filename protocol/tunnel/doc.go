// Package tunnel carries the agent↔control-plane protocol over one
// WebSocket (binary messages) with a yamux session inside it: the agent
// dials out (Dial, yamux client), the control plane upgrades (Accept, yamux
// server), and either side opens typed streams (Session.Open) whose first
// byte is a protocol.StreamKind.
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
