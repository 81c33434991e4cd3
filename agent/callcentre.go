package agent

import (
	"github.com/switchboard-pbx/switchboard/agent/calls"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// recordingConfig tells the call tracker of the recordings the operations
// start and stop, so recording.started and recording.stopped name them.
func (a *Agent) recordingConfig() ops.RecordingConfig {
	return ops.RecordingConfig{
		Dir:       a.cfg.RecordingsDir,
		MaxActive: a.cfg.MaxActiveRecordings,
		Expect: func(uniqueid string, r protocol.Recording) func() {
			a.track(func(t *calls.Tracker) { t.ExpectRecording(uniqueid, r) })
			return func() { a.track(func(t *calls.Tracker) { t.CancelRecording(uniqueid, r.ID) }) }
		},
		ExpectStop: func(uniqueid, id string) {
			a.track(func(t *calls.Tracker) { t.ExpectRecordingStop(uniqueid, id) })
		},
	}
}
