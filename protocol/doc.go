// Package protocol is the wire contract between switchboard-agent (on the
// PBX) and the control plane: message types, stream kinds, framing and the
// protocol version. Nothing else defines bytes that cross the tunnel.
//
// Rules for changing it: messages and fields are added, never changed or
// removed; a bump of Version gets one dated line in the history below.
//
// The tunnel itself (WebSocket + yamux, dial and accept) lives in the
// sub-package tunnel, which is the only code that imports those libraries.
package protocol
