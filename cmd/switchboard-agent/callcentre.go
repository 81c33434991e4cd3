package main

import (
	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/agent/ops"
)

// callCentreFlags configure the queue and recording operations.
type callCentreFlags struct {
	memberInterface, recordingsDir string
	maxRecordings                  int
}

func (f *callCentreFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.memberInterface, "queue-member-interface", ops.DefaultQueueMemberInterface,
		"template of a queue member's interface: {ext} stands for the extension an API request names (e.g. PJSIP/{ext})")
	fs.StringVar(&f.recordingsDir, "recordings-dir", ops.DefaultRecordingsDir,
		"directory Asterisk records to, as this agent sees it: recordings go under its switchboard/ folder and only those are served")
	fs.IntVar(&f.maxRecordings, "max-active-recordings", ops.DefaultMaxActiveRecordings,
		"recordings this agent started and runs at once; more are refused (429 pbx_busy)")
}

func (f callCentreFlags) apply(cfg *agent.Config) {
	cfg.QueueMemberInterface, cfg.RecordingsDir = f.memberInterface, f.recordingsDir
	cfg.MaxActiveRecordings = f.maxRecordings
}
