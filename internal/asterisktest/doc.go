// Package asterisktest starts a real Asterisk for tests and benchmarks,
// the way net/http/httptest starts a server: on loopback, on a free AMI
// port, in its own short-lived directory, stopped and removed by Close.
//
// Two sources, chosen by the environment (see FromEnv):
//
//   - SWITCHBOARD_ASTERISK_LAB names the `asterisk-lab` script of the shared
//     Asterisk 22 build (../shared/asterisk/asterisk-lab from the repository's
//     root); the script unpacks, configures, starts and stops it.
//   - SWITCHBOARD_ASTERISK names an installed `asterisk` binary; this package
//     writes its own configuration from testdata/etc (the lab's dialplan,
//     queue, parking lots and AMI users) into the instance directory and runs
//     `asterisk -C <dir>/etc/asterisk.conf -f` itself, so the user's
//     /etc/asterisk is never read or touched.
//
// Neither set means "no real Asterisk here": Require skips with one message
// saying how to run. Either set means the user asked for it: anything that
// prevents the start is a test failure, never a skip.
//
// Effects are checked in Asterisk itself through its CLI (CLI, Channels), not
// through the code under test. Only tests import this package.
package asterisktest
