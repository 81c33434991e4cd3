// Package calls owns call lifecycle tracking on the agent: it turns the AMI
// event stream of one Asterisk into per-call protocol events —
// call.started, call.ringing, call.answered, call.bridged,
// call.monitor_started / call.monitor_stopped and call.ended — keyed by the
// call id (the uniqueid of the call's first leg).
//
// A Tracker is a pure, deterministic state machine: no goroutines, no I/O,
// time injected through Config.Now (or taken from the AMI Timestamp header
// when Asterisk sends one). The agent feeds it every AMI event in the order
// received and forwards what Handle returns to its outbox, which numbers
// the events. It is not safe for concurrent use; the agent's single AMI
// reader goroutine owns it.
//
// Asterisk does not deliver events in causal order across its subsystems
// (CEL before Newchannel, Cdr before Hangup, OriginateResponse interleaved,
// see protocol/ami/testdata/transcripts); the Tracker still emits each
// lifecycle event of a call at most once and in the order
// started < ringing < answered < bridged < ended, and call.ended exactly
// once per started call. See README.md in this directory for the rules.
package calls
