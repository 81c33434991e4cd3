package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// opActions are the AMI actions each operation sends, for `check` to say
// which operations the AMI user's write classes allow (ping and
// recording_fetch send none). The classes were measured on Asterisk
// 22.10.1 (internal/realpbx's least-privilege cases, and capture 11's
// ListCommands).
var opActions = []struct {
	op      string
	actions []string
}{
	{protocol.OpOriginate, []string{"Originate"}},
	{protocol.OpHangup, []string{"Hangup"}},
	{protocol.OpMonitor, []string{"Originate"}},
	{protocol.OpChannels, []string{"CoreShowChannels"}},
	{protocol.OpStatus, []string{"CoreShowChannels"}},
	{protocol.OpTransfer, []string{"ShowDialPlan", "Status", "BlindTransfer", "Atxfer"}},
	{protocol.OpTransferComplete, []string{"Hangup"}},
	{protocol.OpTransferCancel, []string{"CancelAtxfer"}},
	{protocol.OpDTMF, []string{"PlayDTMF"}},
	{protocol.OpPark, []string{"Parkinglots", "Park"}},
	{protocol.OpParked, []string{"ParkedCalls"}},
	{protocol.OpParkedPickup, []string{"ParkedCalls", "ShowDialPlan", "Originate"}},
	{protocol.OpMute, []string{"MuteAudio"}},
	{protocol.OpQueues, []string{"QueueStatus", "QueueSummary"}},
	{protocol.OpQueueMemberAdd, []string{"QueueAdd"}},
	{protocol.OpQueueMemberDel, []string{"QueueRemove"}},
	{protocol.OpQueueMemberPause, []string{"QueuePause", "QueueStatus"}},
	{protocol.OpQueuePenalty, []string{"QueuePenalty", "QueueStatus"}},
	{protocol.OpRecordingStart, []string{"MixMonitor"}},
	{protocol.OpRecordingStop, []string{"StopMixMonitor"}},
	{protocol.OpRecordingMute, []string{"MixMonitorMute"}},
}

// actionClass names the write class that lets a user run an AMI action,
// for the advice (QueueStatus and QueueSummary need none).
var actionClass = map[string]string{
	"Originate": "originate", "Hangup": "call", "CoreShowChannels": "reporting", "ShowDialPlan": "reporting",
	"Status": "call", "BlindTransfer": "call", "Atxfer": "call", "CancelAtxfer": "call", "PlayDTMF": "call",
	"Parkinglots": "call", "Park": "call", "ParkedCalls": "call", "MuteAudio": "system",
	"QueueAdd": "agent", "QueueRemove": "agent", "QueuePause": "agent", "QueuePenalty": "agent",
	"MixMonitor": "system", "StopMixMonitor": "call", "MixMonitorMute": "call",
}

// checkOperations reports which of the operations the agent's ops allow
// the AMI user may run (p.listed: its ListCommands), and the read classes
// their events need, which AMI does not list.
func checkOperations(r *checkReport, cfg agent.Config, p permissions) {
	var enabled, may, mayNot []string
	for _, oa := range opActions {
		if len(cfg.Ops) > 0 && !slices.Contains(cfg.Ops, oa.op) {
			continue
		}
		enabled = append(enabled, oa.op)
		var missing []string
		for _, a := range oa.actions {
			if !p.listed[strings.ToLower(a)] {
				missing = append(missing, fmt.Sprintf("%s needs write=%s", a, actionClass[a]))
			}
		}
		if len(missing) > 0 {
			mayNot = append(mayNot, oa.op+" ("+strings.Join(missing, ", ")+")")
		} else {
			may = append(may, oa.op)
		}
	}
	read := readAdvice(enabled)
	if len(mayNot) == 0 {
		r.line("ok", "ami operations", "may run %s; %s", orNone(may), read)
		return
	}
	r.line("warn", "ami operations", "may not run %s: grant the class in manager.conf, or leave the operation out of ops so its requests are refused as op_disabled; may run %s; %s",
		strings.Join(mayNot, "; "), orNone(may), read)
}

// readAdvice names the read= classes the enabled operations need: the
// agent reads system, call and cdr events for every call; queue member
// changes are confirmed by agent events (and make queue.*), DTMF digits by
// dtmf events. Without them an operation that did happen answers
// not_confirmed.
func readAdvice(ops []string) string {
	classes := []string{"system", "call", "cdr"}
	var why []string
	if slices.ContainsFunc(ops, func(op string) bool { return strings.HasPrefix(op, "queue_member_") }) {
		classes = append(classes, "agent")
		why = append(why, "agent: queue member changes are confirmed by its events")
	}
	if slices.Contains(ops, protocol.OpDTMF) {
		classes = append(classes, "dtmf")
		why = append(why, "dtmf: each DTMF digit is confirmed by its event")
	}
	s := "they also need read = " + strings.Join(classes, ",")
	if len(why) > 0 {
		s += " (" + strings.Join(why, "; ") + ")"
	}
	return s + ", which AMI does not list"
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// systemAdvice is the warning for a user granted write=system: only
// recording_start (MixMonitor) and mute (MuteAudio) need it.
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
