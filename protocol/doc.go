// Package protocol is the wire contract between switchboard-agent (on the
// PBX) and the control plane: message types, stream kinds, framing and the
// protocol version. Nothing else defines bytes that cross the tunnel.
//
// Rules for changing it: messages, fields, stream kinds and ops are added,
// never changed or removed; a bump of Version gets one dated line in its
// history, and a new op gets the version that introduced it in
// OpMinVersion.
//
// Versions are ranges, not equality (tailscale's CapabilityVersion,
// coder's apiversion): each side speaks every version in [MinVersion,
// Version]. The agent offers Version in the VersionHeader of its upgrade
// request; a control plane that speaks it records it for the session, an
// older one refuses with 400 and its own Version, which the agent then
// offers if it is in its range. Both sides then switch behaviour on the
// session's version: the control plane sends v2 Welcome fields only to v2
// agents and refuses, per request, an op the agent's version predates
// (ErrCodeAgentTooOld). Frames of every supported version are kept in
// testdata/v<N>/ and frozen once a newer version exists.
//
// The tunnel itself (WebSocket + yamux, dial and accept) lives in the
// sub-package tunnel, which is the only code that imports those libraries.
package protocol
