// Package ami is Switchboard's Asterisk Manager Interface client.
//
// It owns the wire codec (messages as ordered header lists, CRLF or bare LF
// line ends, duplicate headers kept, CR/LF/NUL injection refused before
// anything is sent), action/response correlation by ActionID with many
// actions in flight on one connection, event lists, asynchronous Originate
// correlation, event subscribers with bounded buffers, keepalive and
// reconnect.
//
// A Client is one logged-in connection shared by all callers: New then Run
// (reconnects with backoff, for the agent), or Dial (one session, for
// checks and benchmarks). Action, List and Originate take a context and
// fall back to Config.ActionTimeout; failures are typed (ErrNotConnected,
// ErrTimeout, ErrDisconnected, ErrAuth, *ResponseError, ErrInjection).
// Subscribe delivers events plus the synthetic SwitchboardConnected,
// SwitchboardDisconnected and SwitchboardDropped, in wire order.
//
// Its behaviour follows captures of a real Asterisk 22 (see
// testdata/transcripts); the fake server in amitest answers like them.
package ami
