package protocol

import "time"

// Queues and recordings (protocol 3): the arguments and results of
// OpQueues, OpQueueMember*, OpQueuePenalty and OpRecording*, and the
// events the agent derives from app_queue's and MixMonitor's AMI events.

// QueuesArgs asks for the PBX's queues (QueueSummary and QueueStatus).
// With Queue set, only that queue, with its members and waiting callers;
// a queue the PBX does not have is ErrCodeNotFound (AMI answers an empty
// list).
type QueuesArgs struct {
	Queue string `json:"queue,omitempty"`
}

// QueuesResult lists queues, in the PBX's order.
type QueuesResult struct {
	Queues []Queue `json:"queues"`
}

// Queue is one app_queue queue. Times are in seconds, as Asterisk counts
// them.
type Queue struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
	// Callers are waiting now; LongestWaitS is the longest of their waits.
	Callers      int `json:"callers"`
	LongestWaitS int `json:"longest_wait_s"`
	// Available members can take a call now; LoggedIn counts every member.
	Available int `json:"available"`
	LoggedIn  int `json:"logged_in"`
	Completed int `json:"completed"`
	Abandoned int `json:"abandoned"`
	// HoldTimeS and TalkTimeS are Asterisk's running averages.
	HoldTimeS int `json:"hold_time_s"`
	TalkTimeS int `json:"talk_time_s"`
	// MaxCallers is the queue's maxlen, 0 for no limit.
	MaxCallers int `json:"max_callers"`
	// ServiceLevelS and ServiceLevelPerf: the share of calls answered
	// within ServiceLevelS seconds, in percent.
	ServiceLevelS    int     `json:"service_level_s"`
	ServiceLevelPerf float64 `json:"service_level_perf"`
	Weight           int     `json:"weight"`

	// Members and Waiting are set only when one queue was asked for.
	Members []QueueMember `json:"members,omitempty"`
	Waiting []QueueCaller `json:"waiting,omitempty"`
}

// Queue member statuses: Asterisk's device states (QueueMember Status).
const (
	MemberUnknown     = "unknown"     // 0
	MemberNotInUse    = "not_in_use"  // 1
	MemberInUse       = "in_use"      // 2: also while ringing a Local channel
	MemberBusy        = "busy"        // 3
	MemberInvalid     = "invalid"     // 4: e.g. an interface whose technology does not exist
	MemberUnavailable = "unavailable" // 5
	MemberRinging     = "ringing"     // 6
	MemberRingInUse   = "ring_in_use" // 7
	MemberOnHold      = "on_hold"     // 8
)

// MemberStatus names Asterisk's numeric member status.
func MemberStatus(n int) string {
	names := [...]string{MemberUnknown, MemberNotInUse, MemberInUse, MemberBusy, MemberInvalid,
		MemberUnavailable, MemberRinging, MemberRingInUse, MemberOnHold}
	if n < 0 || n >= len(names) {
		return MemberUnknown
	}
	return names[n]
}

// QueueMember is one member of a queue.
type QueueMember struct {
	Queue string `json:"queue"`
	Name  string `json:"name"`
	// Extension is the member's extension when its interface is the one
	// the agent's member interface template makes of it; "" otherwise
	// (a member configured some other way).
	Extension      string `json:"extension,omitempty"`
	Interface      string `json:"interface"`
	StateInterface string `json:"state_interface,omitempty"`
	Status         string `json:"status"` // Member* constants
	Paused         bool   `json:"paused"`
	PausedReason   string `json:"paused_reason,omitempty"`
	InCall         bool   `json:"in_call"`
	CallsTaken     int    `json:"calls_taken"`
	// LastCall, LastPause and LoginTime are unset when Asterisk says 0.
	LastCall  *time.Time `json:"last_call,omitempty"`
	LastPause *time.Time `json:"last_pause,omitempty"`
	LoginTime *time.Time `json:"login_time,omitempty"`
	Penalty   int        `json:"penalty"`
	// Membership is static (queues.conf), dynamic (added through AMI or
	// the dialplan) or realtime.
	Membership string `json:"membership"`
	WrapupS    int    `json:"wrapup_s"`
}

// QueueCaller is a caller waiting in a queue (QueueEntry).
type QueueCaller struct {
	Position     int    `json:"position"`
	WaitS        int    `json:"wait_s"`
	CallerIDNum  string `json:"caller_id_num,omitempty"`
	CallerIDName string `json:"caller_id_name,omitempty"`
	Channel      string `json:"channel"`
	UniqueID     string `json:"uniqueid"`
	// CallID is the call's id (the linkedid of the waiting channel) when
	// the agent's channel table knows the channel.
	CallID   string `json:"call_id,omitempty"`
	Priority int    `json:"priority"`
}

// QueueMemberAddArgs adds the member whose interface the agent makes of
// Extension (its queue member interface template) to Queue.
type QueueMemberAddArgs struct {
	Queue     string `json:"queue"`
	Extension string `json:"extension"`
	Name      string `json:"name,omitempty"` // MemberName; the extension when empty
	Penalty   int    `json:"penalty,omitempty"`
	Paused    bool   `json:"paused,omitempty"`
	Reason    string `json:"reason,omitempty"` // the pause reason when Paused
}

// QueueMemberRemoveArgs removes a dynamic member from Queue.
type QueueMemberRemoveArgs struct {
	Queue     string `json:"queue"`
	Extension string `json:"extension"`
}

// QueueMemberPauseArgs pauses or unpauses a member in Queue or, with Queue
// empty, in every queue it belongs to.
type QueueMemberPauseArgs struct {
	Queue     string `json:"queue,omitempty"`
	Extension string `json:"extension"`
	Paused    bool   `json:"paused"`
	Reason    string `json:"reason,omitempty"`
}

// QueuePenaltyArgs sets a member's penalty in Queue (every queue when
// empty).
type QueuePenaltyArgs struct {
	Queue     string `json:"queue,omitempty"`
	Extension string `json:"extension"`
	Penalty   int    `json:"penalty"`
}

// QueueMemberResult is the member as Asterisk reported it in the events
// that confirmed the change: one entry per queue changed (a pause without
// a queue changes every queue of the member). A removed member is its
// last state.
type QueueMemberResult struct {
	Members []QueueMember `json:"members"`
}

// Recording directions of a mute (RecordingMuteArgs.Direction): what the
// call's channel hears (in), what it says (out), or both.
const (
	RecordIn   = "in"
	RecordOut  = "out"
	RecordBoth = "both"
)

// RecordingStartArgs starts recording a call (MixMonitor on the call's
// first channel). The agent names the file; no part of its path comes
// from the request.
type RecordingStartArgs struct {
	CallID string `json:"call_id"`
}

// RecordingStopArgs stops one recording of a call, or every recording the
// agent started on it when RecordingID is empty.
type RecordingStopArgs struct {
	CallID      string `json:"call_id"`
	RecordingID string `json:"recording_id,omitempty"`
}

// RecordingMuteArgs mutes (Asterisk 22's only "pause") or unmutes one
// recording, or every recording of the call when RecordingID is empty.
type RecordingMuteArgs struct {
	CallID      string `json:"call_id"`
	RecordingID string `json:"recording_id,omitempty"`
	Direction   string `json:"direction"` // Record* constants
	Muted       bool   `json:"muted"`
}

// Recording is one recording the agent started.
type Recording struct {
	ID      string `json:"id"`
	CallID  string `json:"call_id"`
	Channel string `json:"channel"`
	// File is the file's path relative to the agent's recordings
	// directory.
	File      string     `json:"file"`
	StartedAt time.Time  `json:"started_at"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
	// Muted is the direction muted now ("" when none).
	Muted string `json:"muted,omitempty"`
}

// RecordingsResult lists the recordings an operation started, stopped or
// muted.
type RecordingsResult struct {
	Recordings []Recording `json:"recordings"`
}

// RecordingFetchArgs asks for a recording's bytes: Length bytes from
// Offset (Length 0: to the end), or with Suffix the last Suffix bytes. It
// is sent on a StreamBody stream.
type RecordingFetchArgs struct {
	RecordingID string `json:"recording_id"`
	Offset      int64  `json:"offset,omitempty"`
	Length      int64  `json:"length,omitempty"`
	Suffix      int64  `json:"suffix,omitempty"`
}

// RecordingFile describes the bytes that follow a RecordingFetch's
// Response on its StreamBody stream.
type RecordingFile struct {
	RecordingID string    `json:"recording_id"`
	Size        int64     `json:"size"`   // the whole file
	Offset      int64     `json:"offset"` // first byte sent
	Length      int64     `json:"length"` // bytes sent
	ModTime     time.Time `json:"mod_time"`
	ContentType string    `json:"content_type"` // audio/wav
}

// Queue and recording events.
const (
	EventQueueCallerJoined  = "queue.caller_joined"
	EventQueueCallerLeft    = "queue.caller_left"
	EventQueueMemberAdded   = "queue.member_added"
	EventQueueMemberRemoved = "queue.member_removed"
	EventQueueMemberPaused  = "queue.member_paused"
	// EventQueueMemberUnpaused follows an unpause.
	EventQueueMemberUnpaused = "queue.member_unpaused"
	EventRecordingStarted    = "recording.started"
	// EventRecordingStopped follows StopMixMonitor or, as Asterisk sends
	// nothing then, the end of the recorded channel.
	EventRecordingStopped = "recording.stopped"
)

// Why a caller left a queue (Event.Reason of EventQueueCallerLeft).
const (
	LeftAnswered  = "answered"  // a member took the call (Event.AnsweredBy names who)
	LeftAbandoned = "abandoned" // the caller hung up while waiting
	LeftTimeout   = "timeout"   // Queue()'s timeout passed
	LeftExited    = "exited"    // any other way out: leavewhenempty, an exit key
)
