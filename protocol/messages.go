package protocol

import (
	"encoding/json"
	"time"
)

// StreamKind is the first byte written on every yamux stream; it says what
// the stream carries. Kinds are only ever appended.
type StreamKind byte

const (
	// StreamControl is opened once by the agent: Hello → Welcome, then the
	// agent sends Status messages on it for the life of the session.
	StreamControl StreamKind = 1
	// StreamRequest is opened by the control plane for one Request and its
	// Response, then closed.
	StreamRequest StreamKind = 2
	// StreamEvents is opened once by the agent: Event batches go up, Acks
	// come down.
	StreamEvents StreamKind = 3
)

// Hello is the first message of a session, sent by the agent.
type Hello struct {
	Protocol        int      `json:"protocol"`
	AgentVersion    string   `json:"agent_version"`
	Hostname        string   `json:"hostname"`
	AsteriskVersion string   `json:"asterisk_version,omitempty"`
	AMI             AMIState `json:"ami"`
	Context         string   `json:"context,omitempty"`
	// Capabilities listed the ops a version 1 agent ran. Nothing ever read
	// those, and the protocol version now says which ops an agent has
	// (OpMinVersion), so agents of version 2 and later list only what is
	// not an op: CapEventRefusal. Kept because fields are never removed:
	// v1 agents still send their ops.
	Capabilities []string `json:"capabilities,omitempty"`
}

// AMIState is the agent's view of its Asterisk Manager connection.
type AMIState string

const (
	AMIUp   AMIState = "up"
	AMIDown AMIState = "down"
)

// Welcome answers Hello.
type Welcome struct {
	SessionID string `json:"session_id"`
	// HeartbeatSeconds is how often the agent sends Status.
	HeartbeatSeconds int `json:"heartbeat_seconds"`
	// LastAckedSeq is the highest event sequence the control plane has
	// stored for this agent; the agent resends everything after it.
	LastAckedSeq uint64 `json:"last_acked_seq"`

	// Since version 2, sent only to agents of version 2 or later.

	// Protocol is the version the control plane speaks on this session:
	// the agent's Hello.Protocol, which it accepted.
	Protocol int `json:"protocol,omitempty"`
	// ControlPlaneVersion is the control plane's build version, for the
	// agent's logs.
	ControlPlaneVersion string `json:"control_plane_version,omitempty"`
}

// Status is sent by the agent on the control stream every heartbeat and
// whenever its AMI state changes.
type Status struct {
	AgentVersion    string    `json:"agent_version"`
	AsteriskVersion string    `json:"asterisk_version,omitempty"`
	AMI             AMIState  `json:"ami"`
	AMIError        string    `json:"ami_error,omitempty"`
	LiveChannels    int       `json:"live_channels"`
	LiveCalls       int       `json:"live_calls"`
	EventsPending   int       `json:"events_pending"`
	Time            time.Time `json:"time"`
}

// Operation names: the only things the control plane may ask an agent to do.
const (
	OpOriginate = "originate"
	OpHangup    = "hangup"
	OpMonitor   = "monitor"
	OpChannels  = "channels"
	OpStatus    = "status"
	OpPing      = "ping"
)

// Call-centre operations (protocol 3). Their arguments and results are in
// callcontrol.go; those of queues and recordings in queues.go.
const (
	OpTransfer         = "transfer"          // blind (BlindTransfer/Redirect) or attended (Atxfer)
	OpTransferComplete = "transfer_complete" // finish an attended transfer
	OpTransferCancel   = "transfer_cancel"   // abort an attended transfer (CancelAtxfer)
	OpQueues           = "queues"            // QueueSummary (+ QueueStatus for one queue)
	OpQueueMemberAdd   = "queue_member_add"
	OpQueueMemberDel   = "queue_member_remove"
	OpQueueMemberPause = "queue_member_pause"
	OpQueuePenalty     = "queue_member_penalty"
	OpRecordingStart   = "recording_start" // MixMonitor
	OpRecordingStop    = "recording_stop"  // StopMixMonitor
	OpRecordingMute    = "recording_mute"  // MixMonitorMute (Asterisk 22's pause)
	OpRecordingFetch   = "recording_fetch" // a recording file, streamed back
	OpDTMF             = "dtmf"            // PlayDTMF, on the agent's second AMI session
	OpPark             = "park"
	OpParked           = "parked" // ParkedCalls
	OpParkedPickup     = "parked_pickup"
	OpMute             = "mute" // MuteAudio
)

// Ops lists every operation, in a stable order: what an agent may be
// allowed to run (its ops = … allow-list).
var Ops = []string{
	OpOriginate, OpHangup, OpMonitor, OpChannels, OpStatus, OpPing,
	OpTransfer, OpTransferComplete, OpTransferCancel, OpQueues, OpQueueMemberAdd, OpQueueMemberDel,
	OpQueueMemberPause, OpQueuePenalty, OpRecordingStart, OpRecordingStop, OpRecordingMute,
	OpRecordingFetch, OpDTMF, OpPark, OpParked, OpParkedPickup, OpMute,
}

// Request is one operation for the agent. Deadline is absolute; the agent
// abandons the work (and answers ErrCodeTimeout) when it passes.
type Request struct {
	ID       string          `json:"id"`
	Op       string          `json:"op"`
	Deadline time.Time       `json:"deadline"`
	Args     json.RawMessage `json:"args,omitempty"`
}

// Response answers one Request. Exactly one of Result or Error is set.
type Response struct {
	ID     string          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a failed operation, with a stable code the control plane maps to
// an HTTP status.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes carried in Response.Error.
const (
	ErrCodeInvalid     = "invalid"     // arguments refused by validation
	ErrCodeNotFound    = "not_found"   // no such channel / no live call for the target
	ErrCodeTimeout     = "timeout"     // AMI did not answer before the deadline
	ErrCodeAMIDown     = "ami_down"    // the agent has no AMI session right now
	ErrCodeAMIError    = "ami_error"   // Asterisk answered Response: Error
	ErrCodeUnsupported = "unsupported" // unknown op
	ErrCodeInternal    = "internal"    // anything else
	ErrCodeBusy        = "busy"        // agent-side concurrency limit reached
	// ErrCodeAgentTooOld: the agent's protocol version predates the op
	// (OpMinVersion). The control plane returns it without sending the
	// request; an agent never does.
	ErrCodeAgentTooOld = "agent_too_old"
	// ErrCodeOpDisabled: the agent knows the op but its own configuration
	// does not allow it (ops = … in agent.conf).
	ErrCodeOpDisabled = "op_disabled"
	// Call-centre operations (protocol 3; a control plane of protocol 2
	// never sends the ops that answer them).
	//
	// ErrCodeNotConfirmed: Asterisk answered Success but the events that
	// must follow the action did not come within the agent's confirmation
	// timeout (--confirm-timeout, cut to the request's deadline), or said
	// it failed: the operation did not happen, or not as asked. The
	// message says what was expected, for how long, and which AMI read
	// class carries it.
	ErrCodeNotConfirmed = "not_confirmed"
	// ErrCodeConflict: the PBX's state refuses the request (a queue member
	// already there, a call not answered yet).
	ErrCodeConflict = "conflict"
	// ErrCodeMemberNotDynamic: a queue member from queues.conf cannot be
	// removed through AMI.
	ErrCodeMemberNotDynamic = "member_not_dynamic"
)

// OriginateArgs places a call: Local/<From>@<context> is rung first and,
// once answered, runs Dial(Local/<To>@<context>).
type OriginateArgs struct {
	From      string            `json:"from"`
	To        string            `json:"to"`
	CallerID  string            `json:"caller_id,omitempty"`
	TimeoutS  int               `json:"timeout_s,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
	// CallID, if set, becomes the first leg's uniqueid (AMI ChannelId); the
	// agent generates one otherwise.
	CallID string `json:"call_id,omitempty"`
}

// OriginateResult is returned once Asterisk has queued the call.
type OriginateResult struct {
	CallID   string `json:"call_id"`   // uniqueid of the first leg, fixed before dialling
	Channel  string `json:"channel"`   // dial string of the first leg, e.g. Local/150@inoffice
	Status   string `json:"status"`    // "queued"
	ActionID string `json:"action_id"` // AMI ActionID, for log correlation
}

// HangupArgs ends calls. At least one of Channel, UniqueID or All is set.
type HangupArgs struct {
	Channel  string `json:"channel,omitempty"`
	UniqueID string `json:"uniqueid,omitempty"`
	Cause    int    `json:"cause,omitempty"` // Q.850 cause; 16 (normal clearing) when zero
	All      bool   `json:"all,omitempty"`   // every live channel of the PBX
	// Force hangs up the channel even when it is not (yet) in the agent's
	// live channel table, trusting Asterisk to answer "No such channel".
	Force bool `json:"force,omitempty"`
	// By names who asked (an API key's public id or an operator's sub):
	// the call's call.ended says hungup_by By, status completed or
	// canceled. Added 2026-12-06 (protocol 2); an older agent ignores it
	// and names the extension whose leg ended.
	By string `json:"by,omitempty"`
}

// HangupResult lists what was hung up.
type HangupResult struct {
	Hungup []HungupChannel `json:"hungup"`
}

// HungupChannel is one channel ended by a hangup request.
type HungupChannel struct {
	Channel    string    `json:"channel"`
	UniqueID   string    `json:"uniqueid,omitempty"`
	LinkedID   string    `json:"linkedid,omitempty"`
	StartedAt  time.Time `json:"started_at,omitempty"`
	HungupAt   time.Time `json:"hungup_at"`
	DurationMS int64     `json:"duration_ms"`
}

// Monitor modes and their ChanSpy options.
const (
	MonitorSpy     = "spy"     // listen only: ChanSpy(…,bq)
	MonitorWhisper = "whisper" // talk to the target only: bqw
	MonitorBarge   = "barge"   // talk to both parties: Bbqw
)

// MonitorArgs starts supervisor monitoring: From's phone rings and, once
// answered, ChanSpy attaches to Target's live channel.
type MonitorArgs struct {
	Mode     string `json:"mode"`
	Target   string `json:"target"`
	From     string `json:"from"`
	CallerID string `json:"caller_id,omitempty"`
	TimeoutS int    `json:"timeout_s,omitempty"`
}

// MonitorResult says what is being monitored.
type MonitorResult struct {
	TargetChannel  string `json:"target_channel"`  // live channel of the target, e.g. Local/150@inoffice-00000009;1
	TargetPrefix   string `json:"target_prefix"`   // ChanSpy prefix used
	SpyChannel     string `json:"spy_channel"`     // dial string of the supervisor leg
	SpyCallID      string `json:"spy_call_id"`     // uniqueid of the supervisor leg
	ChanSpyOptions string `json:"chanspy_options"` // bq, bqw or Bbqw
}

// ChannelsResult is the agent's live channel table.
type ChannelsResult struct {
	Channels []Channel `json:"channels"`
}

// Channel is one live Asterisk channel.
type Channel struct {
	Channel       string    `json:"channel"`
	UniqueID      string    `json:"uniqueid"`
	LinkedID      string    `json:"linkedid"`
	State         string    `json:"state"` // ChannelStateDesc: Down, Ring, Ringing, Up, Busy…
	CallerIDNum   string    `json:"caller_id_num,omitempty"`
	CallerIDName  string    `json:"caller_id_name,omitempty"`
	ConnectedNum  string    `json:"connected_num,omitempty"`
	ConnectedName string    `json:"connected_name,omitempty"`
	Context       string    `json:"context,omitempty"`
	Exten         string    `json:"exten,omitempty"`
	Application   string    `json:"application,omitempty"`
	AppData       string    `json:"app_data,omitempty"`
	BridgeID      string    `json:"bridge_id,omitempty"`
	StartedAt     time.Time `json:"started_at,omitempty"`
}

// StatusResult answers OpStatus with the agent's current Status.
type StatusResult = Status

// PingResult answers OpPing after an AMI Ping round trip.
type PingResult struct {
	AMIRoundTripMicros int64 `json:"ami_round_trip_us"`
}

// EventBatch carries events up the events stream, in sequence order.
type EventBatch struct {
	Events []Event `json:"events"`
}

// Ack tells the agent every event up to and including Seq is stored.
type Ack struct {
	Seq uint64 `json:"seq"`
	// Refused, when set, says the control plane skipped the frame that
	// followed Seq unread: it was larger than the control plane's frame
	// limit. It also ignores the frames the agent sent after that one
	// until the events after Seq come again, so an agent that announced
	// CapEventRefusal resends them in smaller frames (an event that alone
	// exceeds MaxBytes is replaced by a gap event naming it). Added
	// without a version bump: an agent that does not know the field sees
	// an ack of what was already acknowledged, and the control plane only
	// sends it to agents that announced the capability.
	Refused *Refusal `json:"refused,omitempty"`
}

// Refusal describes an events frame the control plane would not read.
type Refusal struct {
	FrameBytes int64 `json:"frame_bytes"` // announced length of the refused frame
	MaxBytes   int   `json:"max_bytes"`   // the control plane's frame limit
}

// CapEventRefusal, in Hello.Capabilities, says the agent understands
// Ack.Refused. A control plane refuses an oversized events frame of an
// agent without it by ending the session, as before.
const CapEventRefusal = "event_refusal"

// Event types derived by the agent.
const (
	EventCallStarted    = "call.started"
	EventCallRinging    = "call.ringing"
	EventCallAnswered   = "call.answered"
	EventCallBridged    = "call.bridged"
	EventMonitorStarted = "call.monitor_started"
	EventMonitorStopped = "call.monitor_stopped"
	EventCallEnded      = "call.ended"
	// EventGap reports that the agent's bounded buffer overflowed and Lost
	// events were dropped; it takes the sequence number of the first one.
	// A gap event with Dropped set stands for one event the agent could
	// not send because it was too large even with its fields cut (see
	// Event.Dropped); it takes that event's sequence number.
	EventGap = "gap"
)

// Call statuses, named as API users know them.
const (
	CallQueued     = "queued"
	CallRinging    = "ringing"
	CallInProgress = "in-progress"
	CallCompleted  = "completed"
	CallBusy       = "busy"
	CallFailed     = "failed"
	CallNoAnswer   = "no-answer"
	CallCanceled   = "canceled"
)

// Event is one call lifecycle fact, numbered per agent.
type Event struct {
	Seq  uint64    `json:"seq"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`

	CallID    string `json:"call_id,omitempty"`   // uniqueid of the call's first leg
	LinkedID  string `json:"linked_id,omitempty"` // groups the legs
	Direction string `json:"direction,omitempty"` // inbound, outbound, internal, originate
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Status    string `json:"status,omitempty"`
	Channel   string `json:"channel,omitempty"`

	AnsweredAt      *time.Time `json:"answered_at,omitempty"`
	AnsweredBy      string     `json:"answered_by,omitempty"` // extension that answered
	AnsweredChannel string     `json:"answered_channel,omitempty"`

	SpyChannel    string `json:"spy_channel,omitempty"`
	TargetChannel string `json:"target_channel,omitempty"`

	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Cause     int        `json:"cause,omitempty"`
	CauseText string     `json:"cause_text,omitempty"`
	HungupBy  string     `json:"hungup_by,omitempty"`
	DurationS int        `json:"duration_s,omitempty"`
	BillsecS  int        `json:"billsec_s,omitempty"`

	Lost uint64 `json:"lost,omitempty"` // EventGap only

	// Truncated names the fields (by their JSON names) the agent cut to
	// its field limit: their values are prefixes of what Asterisk sent.
	Truncated []string `json:"truncated,omitempty"`
	// Dropped (EventGap only) is the type of the one event this gap
	// replaces because it was too large to send, with Reason saying how
	// large; CallID is that event's (possibly truncated). Empty for a gap
	// of a full buffer.
	Dropped string `json:"dropped,omitempty"`
	Reason  string `json:"reason,omitempty"`

	// Queue and recording events (protocol 3; see queues.go). Reason also
	// says why a caller left a queue (Left* constants) and why a member
	// was paused.
	Queue      string `json:"queue,omitempty"`
	Position   int    `json:"position,omitempty"` // the caller's place in the queue
	HoldTimeS  *int   `json:"hold_time_s,omitempty"`
	Member     string `json:"member,omitempty"` // the member's interface
	MemberName string `json:"member_name,omitempty"`
	// Extension is the member's extension (queue.member_*).
	Extension   string `json:"extension,omitempty"`
	RecordingID string `json:"recording_id,omitempty"`
	File        string `json:"file,omitempty"` // relative to the agent's recordings directory
	// Call control (protocol 3, callcontrol.go): set on call.transfer_*
	// and on call.parked, call.unparked and call.park_timeout.
	Transfer *TransferInfo `json:"transfer,omitempty"`
	Park     *ParkInfo     `json:"park,omitempty"`
}
