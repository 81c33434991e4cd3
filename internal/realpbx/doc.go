// Package realpbx is the opt-in suite that runs the real binaries
// (`switchboard serve`, `switchboard-agent run`, built once per run) against
// a real Asterisk started by internal/asterisktest, and checks every effect
// in Asterisk itself through its CLI as well as through the API and events:
// originate, spy/whisper/barge, hangup by channel and by uniqueid, the
// legacy routes, call events (an originated call, a queue call answered by
// an operator), resuming the event stream, an Asterisk restart under the
// agent, and the least-privilege AMI user; call control: a blind transfer
// moving the customer to 160, an attended transfer completed and one
// cancelled, a parked call listed and picked up, DTMF played while 50
// other requests run, and the AMI classes call control needs.
//
// It also holds the originate latency benchmark that puts direct AMI, our
// AMI client, a bare socket and the whole product side by side against the
// same Asterisk.
//
// Without SWITCHBOARD_ASTERISK_LAB or SWITCHBOARD_ASTERISK set, everything
// here skips with one message saying how to run it. The package has no
// non-test code.
package realpbx
