package protocol

// Version is the agent↔control-plane protocol version this build speaks
// best. A control plane serves agents of every version in [MinVersion,
// Version]; an agent offers Version and, refused by an older control plane
// whose version is in that range, speaks that one instead.
//
// History (one line per bump, never rewritten):
//
//	1 (2026-11-24): hello/welcome, status, typed requests (originate, hangup,
//	                monitor, channels, status, ping), numbered events with acks.
//	2 (2026-12-06): version ranges: the control plane accepts [MinVersion,
//	                Version] and Welcome names the session's protocol and the
//	                control plane's build; ops declare the version that
//	                introduced them (OpMinVersion), an op the agent's version
//	                lacks is refused per request (agent_too_old); an agent
//	                refused with an older version in its range redials with
//	                it; Hello.Capabilities names optional behaviours
//	                (event_refusal: an events frame refused in an Ack is
//	                resent smaller); events may carry truncated/dropped.
//	3 (2026-12-06): call-centre operations: transfer (blind, attended,
//	                complete, cancel), queues and their members, recording
//	                (start, stop, mute, fetch), DTMF, park and pickup, mute;
//	                an agent may disable operations (op_disabled).
const Version = 3

// MinVersion is the oldest protocol version this build still speaks, with
// an agent (control plane side) or with a control plane (agent side). The
// policy is N-1: a fleet upgrades the control plane first and its agents
// over the following days, so a control plane must serve the agents of the
// previous release. Raising it drops those agents and belongs in the
// release notes.
const MinVersion = 1

// Supported reports whether this build speaks protocol version v.
func Supported(v int) bool { return v >= MinVersion && v <= Version }

// VersionHeader carries the agent's protocol version on the WebSocket
// upgrade request, so a control plane that cannot speak it answers with a
// clear HTTP error before any tunnel is set up. On that refusal (400) the
// control plane puts its own Version in the same header.
const VersionHeader = "Switchboard-Protocol"

// ConnectPath is where the control plane accepts agent tunnels.
const ConnectPath = "/agent/v1/connect"

// opMinVersion is the protocol version that introduced each operation. A
// new operation gets the Version it ships in; existing lines never change.
var opMinVersion = map[string]int{
	OpOriginate: 1,
	OpHangup:    1,
	OpMonitor:   1,
	OpChannels:  1,
	OpStatus:    1,
	OpPing:      1,

	OpTransfer: 3, OpTransferComplete: 3, OpTransferCancel: 3,
	OpQueues: 3, OpQueueMemberAdd: 3, OpQueueMemberDel: 3, OpQueueMemberPause: 3, OpQueuePenalty: 3,
	OpRecordingStart: 3, OpRecordingStop: 3, OpRecordingMute: 3, OpRecordingFetch: 3,
	OpDTMF: 3, OpPark: 3, OpParked: 3, OpParkedPickup: 3, OpMute: 3,
}

// OpMinVersion is the protocol version that introduced op: a session of an
// older version cannot carry it, and the control plane refuses such a
// request itself (ErrCodeAgentTooOld) instead of sending it. It is 0 for an
// op this build does not know; the agent answers those with
// ErrCodeUnsupported.
func OpMinVersion(op string) int { return opMinVersion[op] }
