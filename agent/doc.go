// Package agent is switchboard-agent, the daemon on the PBX: it keeps one
// AMI login to the local Asterisk and one outbound tunnel to the control
// plane, each with its own reconnect loop, and joins them:
//
//   - requests coming down the tunnel run as typed operations (package
//     ops) against AMI;
//   - AMI events feed the live channel table (package channels) and the
//     call lifecycle tracker (package calls), whose events are numbered
//     and kept until acknowledged (package outbox) and streamed up the
//     tunnel, resent after a reconnect;
//   - a status (AMI up/down, Asterisk version, live channels and calls,
//     events pending) goes up every heartbeat and on every AMI change.
//
// Flags, files and signals belong to cmd/switchboard-agent; this package
// takes a Config. Nothing here imports the store or the control plane.
package agent
