// Package ops owns the agent's typed operations: the only things the
// control plane may ask a PBX to do (originate, hangup, monitor, channels,
// status, ping; queues and their members, recordings). A change Asterisk
// may answer Success to without doing it is confirmed by the events that
// must follow (queueconfirm.go). Each request is decoded and validated
// against strict patterns BEFORE anything reaches AMI, then turned into
// the AMI actions that carry it out; AMI's and Asterisk's failures are
// mapped to the stable protocol.Error codes the control plane turns into
// HTTP statuses.
//
// There is no raw AMI or CLI passthrough here, by design: a compromised
// control plane must not be able to run arbitrary actions on the PBX.
package ops
