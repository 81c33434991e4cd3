package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// callControlActions are the AMI actions each call-control operation
// sends, and the write class that lets the user run it (measured against
// Asterisk 22.10.1 with internal/realpbx's least-privilege test).
var callControlActions = []struct {
	op      string
	actions []string
}{
	{protocol.OpTransfer, []string{"ShowDialPlan", "Status", "BlindTransfer", "Atxfer"}},
	{protocol.OpTransferComplete, []string{"Hangup"}},
	{protocol.OpTransferCancel, []string{"CancelAtxfer"}},
	{protocol.OpDTMF, []string{"PlayDTMF"}},
	{protocol.OpPark, []string{"Parkinglots", "Park"}},
	{protocol.OpParked, []string{"ParkedCalls"}},
	{protocol.OpParkedPickup, []string{"ParkedCalls", "ShowDialPlan", "Originate"}},
	{protocol.OpMute, []string{"MuteAudio"}},
}

// actionClass names the write class an AMI action needs, for the advice.
var actionClass = map[string]string{
	"ShowDialPlan": "reporting", "Status": "call", "BlindTransfer": "call", "Atxfer": "call", "CancelAtxfer": "call",
	"Hangup": "call", "PlayDTMF": "call", "Parkinglots": "call", "Park": "call", "ParkedCalls": "call",
	"Originate": "originate", "MuteAudio": "system",
}

// checkOperations reports which call-control operations the AMI user may
// run (its ListCommands), among those the agent's ops allow.
func checkOperations(r *checkReport, cfg agent.Config, resp *ami.Message) {
	listed := map[string]bool{}
	for _, h := range resp.Headers {
		listed[strings.ToLower(h.Key)] = true
	}
	var may, mayNot []string
	for _, cc := range callControlActions {
		if len(cfg.Ops) > 0 && !slices.Contains(cfg.Ops, cc.op) {
			continue
		}
		var missing []string
		for _, a := range cc.actions {
			if !listed[strings.ToLower(a)] {
				missing = append(missing, fmt.Sprintf("%s needs write=%s", a, actionClass[a]))
			}
		}
		if len(missing) > 0 {
			mayNot = append(mayNot, cc.op+" ("+strings.Join(missing, ", ")+")")
		} else {
			may = append(may, cc.op)
		}
	}
	dtmf := ""
	if slices.Contains(may, protocol.OpDTMF) {
		dtmf = "; dtmf is confirmed from DTMF events: read= must include dtmf"
	}
	switch {
	case len(may) == 0 && len(mayNot) == 0:
		r.line("ok", "ami operations", "no call-control operation is enabled (ops)")
	case len(mayNot) == 0:
		r.line("ok", "ami operations", "may run %s%s", strings.Join(may, ", "), dtmf)
	default:
		r.line("warn", "ami operations", "may not run %s: grant the class in manager.conf, or leave the operation out of ops so its requests are refused as op_disabled; may run %s%s",
			strings.Join(mayNot, "; "), orNone(may), dtmf)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// systemAdvice is the warning for a user granted write=system: the mute
// operation (MuteAudio) needs it.
func systemAdvice(cfg agent.Config) string {
	var need []string
	for _, op := range []string{protocol.OpRecordingStart, protocol.OpMute} {
		if len(cfg.Ops) == 0 || slices.Contains(cfg.Ops, op) {
			need = append(need, op)
		}
	}
	if len(need) == 0 {
		return "the agent does not need it (recording_start and mute are not in its ops), remove it from write= in manager.conf"
	}
	return "only " + strings.Join(need, " and ") + " need it (MixMonitor, MuteAudio); grant it only where this PBX records or mutes through switchboard, otherwise leave them out of ops and remove system from write= in manager.conf"
}
