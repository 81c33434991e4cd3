// Package outbox owns the agent's numbered, acknowledged, resumable event
// stream buffer: every call event gets the next per-agent sequence number
// and stays here until the control plane acknowledges that it has stored
// it, so after a reconnect everything after the last acknowledgement is
// sent again. The buffer is bounded; when it is full, events are counted
// as lost and one explicit gap event takes their place as soon as there is
// room: nothing is ever dropped silently. An event too large to send
// (Config.MaxEventBytes) is likewise replaced, under its own sequence
// number, by a gap event that names it; Batch cuts frames by bytes.
package outbox
