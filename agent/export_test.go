package agent

import "github.com/switchboard-pbx/switchboard/agent/outbox"

// Outbox is the agent's queue of unacknowledged events.
func (a *Agent) Outbox() *outbox.Outbox { return a.outbox }

// Filled is c with its defaults filled in, as New uses it.
func Filled(c Config) Config {
	c.fill()
	return c
}
