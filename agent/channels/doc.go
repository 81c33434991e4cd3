// Package channels owns the agent's live channel table: what Asterisk
// channels exist right now on this PBX, fed by AMI events (Newchannel,
// Newstate, NewCallerid, NewConnectedLine, Newexten, Rename, BridgeEnter,
// BridgeLeave, Hangup and the client's synthetic Switchboard* events) and
// rebuilt from a CoreShowChannels list after every (re)connect.
//
// The table answers the channels operation, resolves a uniqueid or a name
// to a live channel for hangup, and finds the live channel of an extension
// (and the ChanSpy prefix that reaches it) for monitor. It holds no AMI
// connection itself: the agent feeds it and asks it.
package channels
