// Package amitest is a fake Asterisk Manager Interface server, in the spirit
// of net/http/httptest: it listens on loopback TCP and speaks AMI the way the
// captures of a real Asterisk 22 in ../testdata/transcripts show — banner,
// Login (plain and MD5), "Permission denied" before login, Ping, Command,
// Events masks, Originate with Local channels and the full event sequence of
// a call (Newchannel … DialBegin/DialEnd … BridgeEnter … Hangup, Cdr),
// ChanSpy, Hangup by name and by /regex/, CoreShowChannels, Status,
// Getvar/Setvar, queue "inbound" (its admin actions and its calls) and
// MixMonitor, and Asterisk's parsing quirks.
// Getvar/Setvar, and Asterisk's parsing quirks. Call control follows
// captures 12-17 and 20: BlindTransfer, Redirect, Atxfer (digits, hold,
// the consultation after the transfer digit timeout, AttendedTransfer when
// the transferer hangs up) and CancelAtxfer, with the transfer features
// of Dial t/T (StartDialoutCall places a call that has them); PlayDTMF,
// which holds its session for each digit's duration; MuteAudio;
// Parkinglots, Park (with its broken framing), ParkedCalls, pickup through
// ParkedCall and the call-back on timeout; ShowDialPlan of the lab's
// inoffice and dialout contexts.
//
// It owns a small channel model (uniqueids, linkedids, Local ;1/;2 pairs,
// bridges, channel variables) and a tiny built-in dialplan (the one of the
// captures) whose outcomes tests can override per extension.
//
// It is a library, not test-only code: `switchboard demo` runs it as the
// simulated PBX and load tests run thousands of instances, so it never
// imports package testing, spends no goroutine per channel (call progress
// runs on one scheduler goroutine per Server), bounds what it keeps, and
// Close stops and waits for everything it started.
package amitest
