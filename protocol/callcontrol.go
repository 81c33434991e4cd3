package protocol

// Call control (protocol 3): transfer, park and pickup, DTMF and mute.
// Every operation names its call by CallID, the uniqueid of the call's
// first leg (what POST /v1/calls returned and what events carry as
// call_id); the agent finds the call's live channels by their linkedid.
// A party of the call (transferer, parker, DTMF or mute party) is an
// extension ("150") or an exact channel name of the call; an extension
// matches the channel that stands for it in the call (Local/150@…;1,
// PJSIP/150-…) or, failing that, the one whose caller id it is.
//
// Each operation is confirmed from the events Asterisk must send once it
// really happened (the AMI actions answer Success even when nothing
// follows: transcripts 12-16, README item 22); one that is not confirmed
// within the agent's confirmation timeout answers ErrCodeNotConfirmed.

// Transfer modes.
const (
	TransferBlind    = "blind"    // BlindTransfer: the transferer's peer goes to To at once
	TransferAttended = "attended" // Atxfer: the transferer consults To first
)

// Transfer statuses (TransferResult.Status, TransferControlResult.Status).
const (
	TransferDone       = "transferred" // the call is with the target
	TransferConsulting = "consulting"  // attended: the transferer is calling the target, the peer is on hold
	TransferCanceled   = "canceled"    // attended: back to the original parties
)

// TransferArgs transfers a call (OpTransfer). To must exist in the agent's
// dialplan context: the agent checks it before any action is sent, since
// Asterisk accepts a transfer to nowhere and then hangs the call up.
type TransferArgs struct {
	CallID string `json:"call_id"`
	// Transferer is the party that hands the call over; empty is the
	// call's first leg (the from of a call placed through the API).
	Transferer string `json:"transferer"`
	To         string `json:"to"`
	Mode       string `json:"mode"` // TransferBlind or TransferAttended
	// By names who asked (an API key's public id or an operator's sub);
	// call.transferred carries it.
	By string `json:"by,omitempty"`
}

// TransferResult answers OpTransfer once Asterisk's events showed the
// transfer happening: blind, the BlindTransfer event; attended, the
// transferer put on hold by the bridge's transfer feature.
type TransferResult struct {
	CallID            string `json:"call_id"`
	Mode              string `json:"mode"`
	To                string `json:"to"`
	Status            string `json:"status"`             // TransferDone (blind) or TransferConsulting (attended)
	TransfererChannel string `json:"transferer_channel"` // the channel that handed the call over
	TransfereeChannel string `json:"transferee_channel"` // the party that was transferred
}

// TransferControlArgs finishes (OpTransferComplete) or aborts
// (OpTransferCancel) the attended transfer Transferer started.
type TransferControlArgs struct {
	CallID     string `json:"call_id"`
	Transferer string `json:"transferer"`
	By         string `json:"by,omitempty"`
}

// TransferControlResult answers OpTransferComplete (Status TransferDone,
// after Asterisk's AttendedTransfer event) and OpTransferCancel (Status
// TransferCanceled, after the transferer is taken off hold).
type TransferControlResult struct {
	CallID            string `json:"call_id"`
	Status            string `json:"status"`
	To                string `json:"to,omitempty"`
	TransfererChannel string `json:"transferer_channel"`
	TargetChannel     string `json:"target_channel,omitempty"`
}

// DTMFArgs plays Digits to Party (OpDTMF): each digit is played on the
// party's channel, so the party hears it (an IVR at the far end reads it).
// The agent plays them on its second AMI session: PlayDTMF holds an AMI
// session for each digit's duration.
type DTMFArgs struct {
	CallID     string `json:"call_id"`
	Party      string `json:"party"`
	Digits     string `json:"digits"`                // 0-9 * # A-D
	DurationMS int    `json:"duration_ms,omitempty"` // per digit; 0: the agent's default (100)
	By         string `json:"by,omitempty"`
}

// DTMFResult answers OpDTMF once every digit was confirmed by its DTMFEnd
// event.
type DTMFResult struct {
	CallID     string `json:"call_id"`
	Channel    string `json:"channel"`
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms"`
}

// ParkArgs parks the party Parker is talking to (OpPark): Parker's bridge
// peer goes into Lot and Parker's leg ends, as when an operator presses
// the park feature; when the space times out the call comes back to
// Parker.
type ParkArgs struct {
	CallID   string `json:"call_id"`
	Parker   string `json:"parker"`              // empty: the call's first leg, as TransferArgs.Transferer
	Lot      string `json:"lot,omitempty"`       // "": the PBX's default lot
	TimeoutS int    `json:"timeout_s,omitempty"` // 0: the lot's own
	By       string `json:"by,omitempty"`
}

// ParkResult answers OpPark after the ParkedCall event: where the call is.
type ParkResult struct {
	CallID        string `json:"call_id"`
	Lot           string `json:"lot"`
	Space         string `json:"space"`
	TimeoutS      int    `json:"timeout_s"`
	Channel       string `json:"channel"`        // the parked channel
	ParkerChannel string `json:"parker_channel"` // the channel that parked it
}

// ParkedArgs lists parked calls (OpParked), of one lot or of every lot.
type ParkedArgs struct {
	Lot string `json:"lot,omitempty"`
}

// ParkedResult answers OpParked (Asterisk's ParkedCalls).
type ParkedResult struct {
	Parked []ParkedCall `json:"parked"`
}

// ParkedCall is one parked call.
type ParkedCall struct {
	Lot          string `json:"lot"`
	Space        string `json:"space"`
	CallID       string `json:"call_id"` // the parked channel's linkedid
	Channel      string `json:"channel"`
	UniqueID     string `json:"uniqueid"`
	CallerIDNum  string `json:"caller_id_num,omitempty"`
	CallerIDName string `json:"caller_id_name,omitempty"`
	Parker       string `json:"parker,omitempty"` // dial string of who parked it (called back on timeout)
	TimeoutS     int    `json:"timeout_s"`        // seconds left before it times out
	DurationS    int    `json:"duration_s"`       // seconds parked so far
}

// ParkedPickupArgs retrieves the call parked in Lot/Space to extension To
// (OpParkedPickup): To rings and, when it answers, takes the call.
type ParkedPickupArgs struct {
	Lot      string `json:"lot"`
	Space    string `json:"space"`
	To       string `json:"to"`
	TimeoutS int    `json:"timeout_s,omitempty"` // how long To rings; 0: the agent's originate default
	By       string `json:"by,omitempty"`
}

// Pickup statuses.
const (
	PickupDone    = "picked_up" // UnParkedCall: To answered and has the call
	PickupRinging = "ringing"   // To is ringing; call.unparked follows when it answers
)

// ParkedPickupResult answers OpParkedPickup.
type ParkedPickupResult struct {
	CallID       string `json:"call_id"` // the parked call
	Lot          string `json:"lot"`
	Space        string `json:"space"`
	To           string `json:"to"`
	Status       string `json:"status"`         // PickupDone or PickupRinging
	PickupCallID string `json:"pickup_call_id"` // uniqueid of To's leg
}

// Mute directions (MuteAudio's, lower case only).
const (
	MuteIn  = "in"  // what the party says
	MuteOut = "out" // what the party hears
	MuteAll = "all"
)

// MuteArgs mutes or unmutes Party's audio (OpMute, MuteAudio). Asterisk
// sends no event for it, so the agent reports what Asterisk accepted.
type MuteArgs struct {
	CallID    string `json:"call_id"`
	Party     string `json:"party"`
	Direction string `json:"direction"`
	Muted     bool   `json:"muted"`
	By        string `json:"by,omitempty"`
}

// MuteResult answers OpMute.
type MuteResult struct {
	CallID    string `json:"call_id"`
	Channel   string `json:"channel"`
	Direction string `json:"direction"`
	Muted     bool   `json:"muted"`
}

// Error codes of call control.
const (
	// ErrCodeCallState: the call is not in a state the operation needs
	// (the party is not talking to anyone, no attended transfer is in
	// progress, the consultation is not connected yet).
	ErrCodeCallState = "call_state"
	// ErrCodeFeatureMissing: the PBX lacks what the operation needs, e.g.
	// an attended transfer on a bridge without transfer features (Dial
	// without t/T); the message says what to configure.
	ErrCodeFeatureMissing = "feature_missing"
)

// Call-control events (protocol 3).
const (
	EventCallTransferStarted  = "call.transfer_started"
	EventCallTransferred      = "call.transferred"
	EventCallTransferCanceled = "call.transfer_canceled"
	EventCallParked           = "call.parked"
	EventCallUnparked         = "call.unparked"
	EventCallParkTimeout      = "call.park_timeout"
)

// TransferInfo is Event.Transfer: what a call.transfer_* event is about.
type TransferInfo struct {
	Mode string `json:"mode"`         // TransferBlind or TransferAttended
	To   string `json:"to,omitempty"` // the target
	// By is who asked: the API credential or operator for a transfer
	// placed through the API, else the transferer's extension.
	By                string `json:"by,omitempty"`
	Transferer        string `json:"transferer,omitempty"` // extension of the party that handed the call over
	TransfererChannel string `json:"transferer_channel,omitempty"`
	TargetChannel     string `json:"target_channel,omitempty"` // attended: the consultation channel
}

// ParkInfo is Event.Park: where a call.parked / call.unparked /
// call.park_timeout call is or was.
type ParkInfo struct {
	Lot      string `json:"lot"`
	Space    string `json:"space"`
	TimeoutS int    `json:"timeout_s,omitempty"` // call.parked
	Channel  string `json:"channel,omitempty"`   // the parked channel
	Parker   string `json:"parker,omitempty"`    // who parked it (dial string's extension)
	// RetrievedBy is the extension that picked the call up (call.unparked).
	RetrievedBy string `json:"retrieved_by,omitempty"`
	By          string `json:"by,omitempty"` // the API credential or operator that asked
}
