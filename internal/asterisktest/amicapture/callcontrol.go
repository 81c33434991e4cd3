package main

import (
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
)

// act renders one action: key/value pairs after "Action: name".
func act(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString("Action: " + name + "\r\n")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + ": " + kv[i+1] + "\r\n")
	}
	return b.String() + "\r\n"
}

// dialoutCall places the call the shared captures 12-17 set up through
// the CLI (channel originate Local/150@inoffice extension
// +375296254070@dialout), through AMI: Local/150 answers and runs
// Dial(Local/+375296254070@inoffice,,tT) in context dialout, so the
// bridge has transfer features.
func dialoutCall(id string) string {
	return act("Originate", "ActionID", "orig-"+id, "Channel", "Local/150@inoffice", "Context", "dialout",
		"Exten", "+375296254070", "Priority", "1", "Timeout", "30000", "Async", "true",
		"ChannelId", "sb-capture-"+id, "OtherChannelId", "sb-capture-"+id+"-2")
}

// agentCall places a call the way the agent does (Application Dial, no
// options: no transfer features).
func agentCall(id string) string {
	return act("Originate", "ActionID", "orig-"+id, "Channel", "Local/150@inoffice", "Application", "Dial",
		"Data", "Local/+375296254070@inoffice", "Timeout", "30000", "Async", "true",
		"ChannelId", "sb-capture-"+id, "OtherChannelId", "sb-capture-"+id+"-2")
}

const hangupEverything = "Action: Hangup\r\nActionID: hangup-all-%s\r\nChannel: /^Local/\r\nCause: 16\r\n\r\n"

func hangupAll(id string) string { return strings.Replace(hangupEverything, "%s", id, 1) }

// The call-control session the agent's typed operations run, recorded
// without any CLI set-up so that the fake can replay it whole: the
// existence check of a transfer target (ShowDialPlan), the transfer
// features of a call (Status), BlindTransfer, Atxfer cancelled and
// completed, PlayDTMF, MuteAudio, Park, ParkedCalls, a pickup through
// ParkedCall, and a parked call timing out back to its parker. Channel
// names are those of a freshly booted Asterisk: Local/150@inoffice-00000000
// is the first call's operator.
func init() {
	s := time.Second
	scripts["20-call-control"] = []asterisktest.Step{
		{Title: "20a: a call with transfer features: Local/150 answers and runs Dial(Local/+375296254070@inoffice,,tT) in dialout",
			Send: dialoutCall("20a"), Wait: s},
		{Title: "20b: ShowDialPlan of a target that exists (160 matches _1XX in inoffice)",
			Send: act("ShowDialPlan", "ActionID", "dialplan-160", "Context", "inoffice", "Extension", "160"), Wait: s / 2},
		{Title: "20c: ShowDialPlan of a target that does not exist",
			Send: act("ShowDialPlan", "ActionID", "dialplan-nosuchexten", "Context", "inoffice", "Extension", "*99"), Wait: s / 2},
		{Title: "20d: ShowDialPlan of a context that does not exist",
			Send: act("ShowDialPlan", "ActionID", "dialplan-nosuchcontext", "Context", "nosuchcontext", "Extension", "160"), Wait: s / 2},
		{Title: "20e: Status of the operator: Dial with options tT",
			Send: act("Status", "ActionID", "status-operator", "Channel", "Local/150@inoffice-00000000;1"), Wait: s / 2},
		{Title: "20f: BlindTransfer of the operator's peer (the customer) to 160",
			Send: act("BlindTransfer", "ActionID", "blindxfer", "Channel", "Local/150@inoffice-00000000;1", "Exten", "160", "Context", "inoffice"), Wait: s},
		{Title: "20g: hang up what is left", Send: hangupAll("20g"), Wait: s},
		{Title: "20h: a second call with transfer features", Send: dialoutCall("20h"), Wait: s},
		{Title: "20i: Atxfer to 160: the customer on hold, the consultation with 160 forms after transferdigittimeout",
			Send: act("Atxfer", "ActionID", "atxfer-160", "Channel", "Local/150@inoffice-00000002;1", "Exten", "160", "Context", "inoffice"), Wait: 5 * s},
		{Title: "20j: CancelAtxfer: 160 hangs up, the operator is back with the customer",
			Send: act("CancelAtxfer", "ActionID", "cancelatxfer", "Channel", "Local/150@inoffice-00000002;1"), Wait: s},
		{Title: "20k: Atxfer to 161", Send: act("Atxfer", "ActionID", "atxfer-161", "Channel", "Local/150@inoffice-00000002;1", "Exten", "161", "Context", "inoffice"), Wait: 5 * s},
		{Title: "20l: complete the transfer by hanging up the operator: AttendedTransfer, the customer with 161",
			Send: act("Hangup", "ActionID", "hangup-transferer", "Channel", "Local/150@inoffice-00000002;1", "Cause", "16"), Wait: s},
		{Title: "20m: hang up what is left", Send: hangupAll("20m"), Wait: s},
		{Title: "20n: a call as the agent places it (no transfer features)", Send: agentCall("20n"), Wait: s},
		{Title: "20o: Status of the operator: Dial without options",
			Send: act("Status", "ActionID", "status-agent-call", "Channel", "Local/150@inoffice-00000006;1"), Wait: s / 2},
		{Title: "20p: PlayDTMF 1 (Duration 100) to the customer",
			Send: act("PlayDTMF", "ActionID", "dtmf-1", "Channel", "Local/+375296254070@inoffice-00000007;1", "Digit", "1", "Duration", "100"), Wait: s / 2},
		{Title: "20q: PlayDTMF # (default duration) to the customer",
			Send: act("PlayDTMF", "ActionID", "dtmf-hash", "Channel", "Local/+375296254070@inoffice-00000007;1", "Digit", "#"), Wait: s / 2},
		{Title: "20r: MuteAudio of the operator, in, on",
			Send: act("MuteAudio", "ActionID", "mute-in", "Channel", "Local/150@inoffice-00000006;1", "Direction", "in", "State", "on"), Wait: s / 2},
		{Title: "20s: MuteAudio of the operator, all, off",
			Send: act("MuteAudio", "ActionID", "mute-all-off", "Channel", "Local/150@inoffice-00000006;1", "Direction", "all", "State", "off"), Wait: s / 2},
		{Title: "20t: MuteAudio with Direction IN (upper case is refused)",
			Send: act("MuteAudio", "ActionID", "mute-upper", "Channel", "Local/150@inoffice-00000006;1", "Direction", "IN", "State", "on"), Wait: s / 2},
		{Title: "20u: Parkinglots", Send: act("Parkinglots", "ActionID", "parkinglots"), Wait: s / 2},
		{Title: "20v: Park the customer, bridged (TimeoutChannel = the operator), lot default, Timeout 45000",
			Send: act("Park", "ActionID", "park", "Channel", "Local/+375296254070@inoffice-00000007;1", "TimeoutChannel", "Local/150@inoffice-00000006;1",
				"Parkinglot", "default", "Timeout", "45000"), Wait: s},
		{Title: "20w: ParkedCalls", Send: act("ParkedCalls", "ActionID", "parkedcalls"), Wait: s / 2},
		{Title: "20x: pick the call up to 160: Originate Local/160 running ParkedCall(default,701)",
			Send: act("Originate", "ActionID", "orig-pickup", "Channel", "Local/160@inoffice", "Application", "ParkedCall", "Data", "default,701",
				"Timeout", "30000", "Async", "true", "ChannelId", "sb-capture-20x", "OtherChannelId", "sb-capture-20x-2"), Wait: 2 * s},
		{Title: "20y: hang up what is left", Send: hangupAll("20y"), Wait: s},
		{Title: "20z: a call parked into lot operators for 2 s: it times out and calls the operator back",
			Send: agentCall("20z"), Wait: s},
		{Title: "20z2: Park with Timeout 2000",
			Send: act("Park", "ActionID", "park-timeout", "Channel", "Local/+375296254070@inoffice-0000000a;1", "TimeoutChannel", "Local/150@inoffice-00000009;1",
				"Parkinglot", "operators", "Timeout", "2000"), Wait: 4 * s},
		{Title: "20z3: hang up what is left", Send: hangupAll("20z3"), Wait: s},
	}
}
