// Package systemd owns the daemons' side of the contract with the systemd
// service manager: readiness, stopping and watchdog notifications
// (sd_notify), the watchdog interval systemd asks for, and credentials
// passed with LoadCredential=.
//
// It is written against the documented wire formats with the standard
// library only, so neither binary gains a dependency for it. Every function
// is a no-op that reports "not under systemd" when the relevant environment
// variable is absent, so the daemons call it unconditionally.
//
// The unit files that go with this package (switchboard.service,
// switchboard-agent.service) live in the same folder and are shipped by the
// packages built from packaging/.
//
// Only cmd/ mains should import this package: libraries report readiness to
// their caller, and the main decides what "ready" means for the process.
package systemd
