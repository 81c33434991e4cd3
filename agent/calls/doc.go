// Package calls owns call lifecycle tracking on the agent: it turns the AMI
// event stream of one Asterisk into per-call protocol events —
// call.started, call.ringing, call.answered, call.bridged,
// call.monitor_started / call.monitor_stopped and call.ended — keyed by the
// call id, the uniqueid of the call's first leg; and, from app_queue's and
// MixMonitor's events, the queue.* and recording.* events (queues.go,
// recordings.go).
//
// A Tracker is a pure, deterministic state machine: no goroutines, no I/O,
// time injected through Config.Now (or taken from the AMI Timestamp header
// when Asterisk sends one). The agent feeds it every AMI event in the order
// received and forwards what Handle returns to its outbox, which numbers
// the events. It is not safe for concurrent use; the agent's AMI reader
// owns it. Only the agent imports it.
//
// # Legs and calls
//
// Channels are grouped into calls by Linkedid; the call id is the Linkedid,
// which is the Uniqueid of the call's first channel. Both halves of a Local
// pair (";1", ";2") are one leg. When a channel turns up with another
// call's Linkedid (Asterisk propagates the oldest linkedid through bridges
// and transfers) its leg moves to that call, and the call it left ends once
// nothing is left of it. CEL events are not used, so CEL arriving before
// Newchannel changes nothing; Cdr only contributes billsec.
//
// # Rules
//
//	event                 emitted on (first one wins; later ones are dropped)
//	call.started          Newchannel of a first leg (Uniqueid == Linkedid);
//	                      status queued (originate) or ringing
//	call.ringing          the far end rings: Newstate/DialState Ringing, or a
//	                      dialled non-Local channel born in state Ring
//	call.answered         the far end is up: Newstate Up or DialEnd ANSWER;
//	                      answered_by is its extension (Local/102@from-queue
//	                      or PJSIP/102-… → 102)
//	call.bridged          two legs of the call share a bridge (emits
//	                      call.answered first if it was missed)
//	call.monitor_*        ChanSpyStart/Stop whose spyee is in the call; still
//	                      running monitors are stopped just before call.ended
//	call.ended            every leg has hung up, or OriginateResponse Failure
//	                      arrived and the originated channel has hung up
//	call.transfer_*,      transfers and parking: see callcontrol.go; the
//	call.parked/unparked/ leg that transferred or parked the call (or a
//	call.park_timeout     cancelled consultation) leaves it without ending it
//
// The "far end" is every leg but the first, except for originated calls:
// Originate rings its own channel first. When that channel runs Dial
// (click-to-call: the agent's phone, then the number) the far end is what
// it dials; when it runs anything else (Wait, ChanSpy, Playback) the
// originated channel is the far end. ExpectOriginate/ExpectMonitor say which
// for calls the agent places; otherwise OriginateResponse's Application, or
// a second leg appearing, tells, and until then the first leg's ringing and
// answer are held back. A Local ";2" half is born in Ring because it runs
// the dialplan, not because a phone rings, so it does not count as ringing
// (Busy() never rang).
//
// Direction: originate when the first channel is born Down (nobody calls
// on it: AMI/CLI Originate, call files) or the agent said so; otherwise
// inbound when the caller's channel is not an extension (a trunk such as
// PJSIP/trunk-…), internal when an extension dials an extension, outbound
// when it dials anything else. An extension is 1..ExtensionMaxDigits
// digits.
//
// Final status, first match: completed if answered; else the latest
// evidence — busy (DialStatus BUSY, cause 17 or 21, OriginateResponse
// Reason 5), no-answer (NOANSWER, cause 18/19, Reason 3), failed
// (CONGESTION → cause 34, CHANUNAVAIL, causes 1/3/34/41/44, Reason 8 and
// 0), canceled (the caller hung up, or DialStatus CANCEL, while the far end
// was still there; it sticks); else canceled if a far end was rung;
// completed if the PBX itself answered an inbound call (IVR); canceled for
// other calls nobody originated; failed for originates. The cause is the
// Hangup cause of the leg that decided (answered leg, evidence leg, caller
// for canceled); when Asterisk gave 0 (Local channels often do), the cause
// the outcome implies (16, 17, 19, 34) or 0 "Unknown". hungup_by (completed
// and canceled only) is the first answered leg (or the caller) to start
// hanging up; a leg that left while two real parties stayed connected
// (an operator completing a transfer) hands that role to the next one.
// billsec is Asterisk's Cdr BillableSeconds of the answered leg when that
// leg lasted to the end, else end − answer.
//
// # Reconnects and bounds
//
// Reset (or the synthetic SwitchboardDisconnected event) keeps calls but
// forgets bridges; Resync with the CoreShowChannel items after the
// reconnect ends calls none of whose channels is live (status from what
// was seen, cause 0 "unknown (AMI reconnect)") and adopts live calls it did
// not know (call.started, then answered/bridged as their state shows).
// At most MaxCalls calls are remembered, ended ones kept briefly to absorb
// late Cdr/OriginateResponse/ChanSpyStop: oldest ended ones go first, then
// the oldest live one, ended with cause 0 "unknown (call evicted: tracker
// full)". Each lifecycle event is emitted at most once per call while the
// call is remembered.
package calls
