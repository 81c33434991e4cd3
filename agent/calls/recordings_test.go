package calls

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol"
)

func recordingSummary(evs []protocol.Event) string {
	var b []string
	for _, e := range evs {
		if !strings.HasPrefix(e.Type, "recording.") {
			continue
		}
		s := fmt.Sprintf("%s(%s %s %s", strings.TrimPrefix(e.Type, "recording."), e.CallID, e.Channel, e.RecordingID)
		if e.Reason != "" {
			s += " " + e.Reason
		}
		b = append(b, s+")")
	}
	return strings.Join(b, "\n")
}

// Capture 15: recordings the agent started carry their id and file,
// others (here: the capture tool's) none; StopMixMonitor ends them with
// MixMonitorStop, and a hangup ends one silently: the tracker reports it
// stopped then, before the call's end.
func TestRecordingEventsFromCapture(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	const op = "1796533095.0" // Local/150@inoffice-00000000;1, the call's first channel
	tr.ExpectRecording(op, protocol.Recording{ID: "rec-20261206-00000000000000a1", CallID: op, File: "switchboard/20261206/rec-20261206-00000000000000a1.wav"})
	// A second expectation, withdrawn: its MixMonitor failed.
	tr.ExpectRecording(op, protocol.Recording{ID: "rec-20261206-00000000000000a2", CallID: op})
	tr.CancelRecording(op, "rec-20261206-00000000000000a2")
	evs := feed(tr, clk, loadCapture(t, "15-mixmonitor"))
	if bad := violations(evs); len(bad) > 0 {
		t.Fatalf("invariants broken:\n%v", bad)
	}
	want := strings.Join([]string{
		"started(1796533095.0 Local/150@inoffice-00000000;1 rec-20261206-00000000000000a1)", // 15a
		"stopped(1796533095.0 Local/150@inoffice-00000000;1 rec-20261206-00000000000000a1)", // 15b
		"started(1796533095.0 Local/150@inoffice-00000000;1 )",                              // 15c
		"stopped(1796533095.0 Local/150@inoffice-00000000;1 )",                              // 15h
		"started(1796533095.0 Local/+375296254070@inoffice-00000001;1 )",                    // 15i, twice
		"started(1796533095.0 Local/+375296254070@inoffice-00000001;1 )",
		"stopped(1796533095.0 Local/+375296254070@inoffice-00000001;1 )",
		"stopped(1796533095.0 Local/+375296254070@inoffice-00000001;1 )",
		"started(1796533095.0 Local/150@inoffice-00000000;1 )", // 15j: left running, then the hangup
		"stopped(1796533095.0 Local/150@inoffice-00000000;1  hangup)",
	}, "\n")
	if got := recordingSummary(evs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for _, e := range evs {
		if e.RecordingID != "" && e.File != "switchboard/20261206/rec-20261206-00000000000000a1.wav" {
			t.Errorf("%s without its file: %+v", e.Type, e)
		}
	}
	if len(tr.recs) != 0 {
		t.Errorf("%d channels' recordings left behind", len(tr.recs))
	}
}
