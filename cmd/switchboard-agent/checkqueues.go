package main

import (
	"slices"
	"strings"
)

// opActions are the AMI actions each operation sends, for `check` to say
// which operations the AMI user's write classes allow. An operation
// needing none (ping, recording_fetch) is always allowed. Measured on
// Asterisk 22.10.1: QueueStatus and QueueSummary need no class, the queue
// member actions need write=agent, MixMonitor write=system, StopMixMonitor
// and MixMonitorMute write=call.
var opActions = map[string][]string{
	"originate":            {"Originate"},
	"hangup":               {"Hangup"},
	"monitor":              {"Originate"},
	"channels":             {"CoreShowChannels"},
	"status":               {"CoreShowChannels"},
	"queues":               {"QueueStatus", "QueueSummary"},
	"queue_member_add":     {"QueueAdd"},
	"queue_member_remove":  {"QueueRemove"},
	"queue_member_pause":   {"QueuePause", "QueueStatus"},
	"queue_member_penalty": {"QueuePenalty", "QueueStatus"},
	"recording_start":      {"MixMonitor"},
	"recording_stop":       {"StopMixMonitor"},
	"recording_mute":       {"MixMonitorMute"},
}

// opReadClasses are the read= classes whose events an operation waits for
// or reports: AMI does not list a user's read classes, so `check` names
// them instead of testing them.
const opReadClasses = "read = system,call,cdr,agent (agent: the queue events that confirm member changes and make queue.*; call: MixMonitor's)"

// reportOps says which operations the write classes allow: ok when all,
// warn naming the ones they do not (the agent answers those with
// ami_error "Permission denied").
func reportOps(r *checkReport, p permissions) {
	var allowed, denied []string
	ops := make([]string, 0, len(opActions))
	for op := range opActions {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		var missing []string
		for _, a := range opActions[op] {
			if !p.listed[strings.ToLower(a)] {
				missing = append(missing, a)
			}
		}
		if len(missing) == 0 {
			allowed = append(allowed, op)
		} else {
			denied = append(denied, op+" ("+strings.Join(missing, ", ")+")")
		}
	}
	if len(denied) == 0 {
		r.line("ok", "ami call centre", "write= allows every operation; they also need %s", opReadClasses)
		return
	}
	r.line("warn", "ami call centre", "write= does not allow %s (turn them off with --ops, or see manager.conf.example); allowed: %s",
		strings.Join(denied, ", "), strings.Join(allowed, ", "))
}
