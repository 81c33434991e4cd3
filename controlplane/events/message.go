package events

import (
	"encoding/json"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Event is a stored event as clients see it: on the WebSocket, in
// GET /v1/events pages, in a call's timeline and as a webhook body.
// Seq is the per-enterprise sequence clients resume from (it replaces the
// agent's own numbering, which clients never see); PBX is the agent id.
type Event struct {
	Seq        int64     `json:"seq"`
	PBX        string    `json:"pbx"`
	ReceivedAt time.Time `json:"received_at"`
	protocol.Event
}

// Stream control messages. They are told apart from events by their
// type, which never starts with "call." or equals "gap".
const (
	// MsgTruncated: the client asked to resume after a sequence older than
	// retention keeps; events between it and OldestSeq are gone. Sent
	// once, before the replay.
	MsgTruncated = "stream.truncated"
	// MsgLive: the replay is done; what follows is live. Seq is the last
	// sequence covered so far.
	MsgLive = "stream.live"
)

// Control is a stream control message.
type Control struct {
	Type string `json:"type"`
	// Seq is where the stream stands: after MsgLive, the latest sequence
	// covered; after MsgTruncated, the point the replay now starts from.
	Seq            int64  `json:"seq"`
	RequestedAfter int64  `json:"requested_after,omitempty"`
	OldestSeq      int64  `json:"oldest_seq,omitempty"`
	Message        string `json:"message,omitempty"`
}

// EventTypes lists the types a ?types= or webhook event_types filter
// may name.
var EventTypes = []string{
	protocol.EventCallStarted, protocol.EventCallRinging, protocol.EventCallAnswered, protocol.EventCallBridged,
	protocol.EventMonitorStarted, protocol.EventMonitorStopped, protocol.EventCallEnded, protocol.EventGap,
	// Queues and recordings (protocol 3).
	protocol.EventQueueCallerJoined, protocol.EventQueueCallerLeft, protocol.EventQueueMemberAdded,
	protocol.EventQueueMemberRemoved, protocol.EventQueueMemberPaused, protocol.EventQueueMemberUnpaused,
	protocol.EventRecordingStarted, protocol.EventRecordingStopped,
	protocol.EventCallTransferStarted, protocol.EventCallTransferred, protocol.EventCallTransferCanceled,
	protocol.EventCallParked, protocol.EventCallUnparked, protocol.EventCallParkTimeout,
}

func publicEvent(se store.StoredEvent) Event {
	return Event{Seq: se.Seq, PBX: se.AgentID, ReceivedAt: se.ReceivedAt.UTC(), Event: se.Event}
}

// EncodeEvent is the one encoding of an event, shared by every delivery
// path, so a webhook body and a WebSocket message of one event are the
// same bytes.
func EncodeEvent(se store.StoredEvent) ([]byte, error) {
	return json.Marshal(publicEvent(se))
}
