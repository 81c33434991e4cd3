package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/agent/ops"
)

// callControlFlags bound transfer, park, DTMF and mute (README "Limits
// and abuse").
type callControlFlags struct {
	confirmTimeout                       time.Duration
	dtmfDigits                           int
	dtmfDuration, minDTMFDur, maxDTMFDur time.Duration
	maxParkTimeout                       time.Duration
	maxTransfers                         int
}

func (f *callControlFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.confirmTimeout, "call-confirm-timeout", ops.DefaultCallConfirmTimeout, "how long a transfer, park, pickup or DTMF digit waits for the Asterisk events that prove it happened before it answers not_confirmed")
	fs.IntVar(&f.dtmfDigits, "max-dtmf-digits", ops.DefaultMaxDTMFDigits, "most digits one DTMF request may play")
	fs.DurationVar(&f.dtmfDuration, "dtmf-duration", ops.DefaultDTMFDuration, "length of a DTMF digit when the request does not say")
	fs.DurationVar(&f.minDTMFDur, "min-dtmf-duration", ops.DefaultMinDTMFDuration, "shortest DTMF digit a request may ask for")
	fs.DurationVar(&f.maxDTMFDur, "max-dtmf-duration", ops.DefaultMaxDTMFDuration, "longest DTMF digit a request may ask for (PlayDTMF holds the agent's second AMI session that long)")
	fs.DurationVar(&f.maxParkTimeout, "max-park-timeout", ops.DefaultMaxParkTimeout, "longest timeout a park request may ask for")
	fs.IntVar(&f.maxTransfers, "max-attended-transfers", ops.DefaultMaxTransfers, "attended transfers (consultation calls) in progress at once on this PBX; more are refused (429 pbx_busy)")
}

func (f callControlFlags) apply(cfg *agent.Config) {
	cfg.CallControl = ops.CallControl{
		ConfirmTimeout: f.confirmTimeout, MaxDTMFDigits: f.dtmfDigits,
		DTMFDuration: f.dtmfDuration, MinDTMFDuration: f.minDTMFDur, MaxDTMFDuration: f.maxDTMFDur,
		MaxParkTimeout: f.maxParkTimeout, MaxTransfers: f.maxTransfers,
	}
}
