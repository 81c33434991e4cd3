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
// Call control (transfer, park and pickup, DTMF, mute: callcontrol.go,
// transfer.go, park.go, dtmf.go, mute.go) checks what Asterisk would
// accept and then do nothing with (a transfer target missing from the
// dialplan, an attended transfer on a bridge without transfer features, a
// parking lot that does not exist) before it sends anything, and confirms
// every operation from the events that must follow it (Observe, fed by
// the agent with every AMI event) within CallControl.ConfirmTimeout.
// PlayDTMF holds the AMI session it runs on for each digit, so it runs on
// a second session (Config.DTMF).
//
// There is no raw AMI or CLI passthrough here, by design: a compromised
// control plane must not be able to run arbitrary actions on the PBX.
package ops
