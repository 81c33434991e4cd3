package agent

import (
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// dtmfSession is the login of the agent's second AMI session: the same
// user, no events (the first session reads them all), for PlayDTMF only.
// PlayDTMF holds the session it runs on for each digit's duration (README
// item 29), which must never stall the operations and the event stream of
// the first.
func dtmfSession(c ami.Config) ami.Config {
	c.Events = "off"
	if c.Logger != nil {
		c.Logger = c.Logger.With("ami_session", "dtmf")
	}
	return c
}

// OpsStats reports the call-control counters (for metrics).
func (a *Agent) OpsStats() ops.Stats { return a.handler.Stats() }

// DTMFSessionUp reports whether the second AMI session, the one PlayDTMF
// runs on, is logged in.
func (a *Agent) DTMFSessionUp() bool { return a.dtmf.Connected() }
