package main

import (
	"bytes"
	"strings"
	"testing"
)

// Which operations a manager.conf write= allows, on Asterisk 22's own
// ListCommands (capture 11) as each user would see it.
func TestReportOps(t *testing.T) {
	all := captureListCommands(t)
	for _, tc := range []struct {
		name    string
		classes []string
		want    []string
		warns   int
	}{
		{"the least privilege before queues and recordings", []string{"originate", "call", "reporting"},
			[]string{"warn  ami call centre", "queue_member_add (QueueAdd)", "queue_member_pause (QueuePause)", "recording_start (MixMonitor)",
				"allowed: channels, hangup, monitor, originate, queues, recording_mute, recording_stop, status"}, 1},
		{"with agent: everything but recording_start", []string{"originate", "call", "reporting", "agent"},
			[]string{"does not allow recording_start (MixMonitor)"}, 1},
		{"with agent and system: everything", []string{"originate", "call", "reporting", "agent", "system"},
			[]string{"ok    ami call centre", "write= allows every operation", "read = system,call,cdr,agent"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &checkReport{w: &out}
			reportOps(r, analyzePermissions(asUser(t, all, tc.classes...)))
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
