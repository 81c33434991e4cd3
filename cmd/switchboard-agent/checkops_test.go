package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/agent"
)

// Which operations a manager.conf write= allows, on Asterisk 22's own
// ListCommands (capture 11) as each user would see it, among those the
// agent's ops enable, and the read= classes they need.
func TestCheckOperations(t *testing.T) {
	all := captureListCommands(t)
	for _, tc := range []struct {
		name    string
		classes []string
		ops     []string
		want    []string
		warns   int
	}{
		{"the least privilege before the call-centre operations", []string{"originate", "call", "reporting"}, nil,
			[]string{"warn  ami operations", "mute (MuteAudio needs write=system)", "queue_member_add (QueueAdd needs write=agent)",
				"queue_member_pause (QueuePause needs write=agent)", "recording_start (MixMonitor needs write=system)",
				"may run originate, hangup, monitor, channels, status, transfer, transfer_complete, transfer_cancel, dtmf, park, parked, parked_pickup, queues, recording_stop, recording_mute;",
				"read = system,call,cdr,agent,dtmf"}, 1},
		{"with agent: all but recording_start and mute", []string{"originate", "call", "reporting", "agent"}, nil,
			[]string{"may not run mute (MuteAudio needs write=system); recording_start (MixMonitor needs write=system):"}, 1},
		{"with agent and system: everything", []string{"originate", "call", "reporting", "agent", "system"}, nil,
			[]string{"ok    ami operations   may run originate,", "recording_mute; they also need read = system,call,cdr,agent,dtmf (agent: queue member changes"}, 0},
		{"ops without queues or mute", []string{"originate", "call", "reporting"}, []string{"originate", "transfer", "dtmf"},
			[]string{"ok    ami operations   may run originate, transfer, dtmf; they also need read = system,call,cdr,dtmf (dtmf: each DTMF digit"}, 0},
		{"ops with a queue change the user may not make", []string{"originate", "call", "reporting"}, []string{"originate", "queue_member_pause"},
			[]string{"may not run queue_member_pause (QueuePause needs write=agent)", "may run originate; they also need read = system,call,cdr,agent"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &checkReport{w: &out}
			checkOperations(r, agent.Config{Ops: tc.ops}, analyzePermissions(asUser(t, all, tc.classes...)))
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
			if r.warns != tc.warns {
				t.Errorf("%d warnings, want %d:\n%s", r.warns, tc.warns, out.String())
			}
		})
	}
}
