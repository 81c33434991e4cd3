// Command amicapture records AMI sessions with a real Asterisk as
// captures in the format of ../shared/ami-transcripts, for the golden
// tests of protocol/ami/amitest to replay against the fake:
//
//	SWITCHBOARD_ASTERISK_LAB=../shared/asterisk/asterisk-lab \
//	  go run ./internal/asterisktest/amicapture -out protocol/ami/testdata/transcripts 18-originate-test-lines
//
// It starts its own Asterisk (asterisktest.FromEnv), so the recording
// starts from a freshly booted PBX with no channels.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
)

// scripts are the sessions this tool knows how to record.
var scripts = map[string][]asterisktest.Step{
	// The numeric test lines of the lab's dialplan (inoffice 5550000 rings
	// forever, 5550001 is busy, 5550002 is congested), which the API can
	// dial (its numbers are digits only), originated the way capture 04
	// originates the named ones, then the way the agent does: Local/150
	// answers and Dials the test line, with ChannelId/OtherChannelId.
	"18-originate-test-lines": {
		{Title: "18a: Async Originate to 5550001 (Busy() in dialplan), Timeout 3000",
			Send: "Action: Originate\r\nActionID: orig-5550001\r\nChannel: Local/5550001@inoffice\r\nApplication: Wait\r\nData: 600\r\nTimeout: 3000\r\nAsync: true\r\n\r\n",
			Wait: 2 * time.Second},
		{Title: "18b: Async Originate to 5550000 (Ringing(), Wait(600)): no answer after Timeout 3000",
			Send: "Action: Originate\r\nActionID: orig-5550000\r\nChannel: Local/5550000@inoffice\r\nApplication: Wait\r\nData: 600\r\nTimeout: 3000\r\nAsync: true\r\n\r\n",
			Wait: 5 * time.Second},
		{Title: "18c: Async Originate to 5550002 (Congestion() in dialplan), Timeout 3000",
			Send: "Action: Originate\r\nActionID: orig-5550002\r\nChannel: Local/5550002@inoffice\r\nApplication: Wait\r\nData: 600\r\nTimeout: 3000\r\nAsync: true\r\n\r\n",
			Wait: 2 * time.Second},
		{Title: "18d: the agent's Originate: Local/150 answers, Dial(Local/5550001) is busy",
			Send: "Action: Originate\r\nActionID: orig-agent-busy\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/5550001@inoffice\r\nTimeout: 30000\r\nAsync: true\r\nChannelId: sb-capture-18d\r\nOtherChannelId: sb-capture-18d-2\r\n\r\n",
			Wait: 2 * time.Second},
		{Title: "18e: the agent's Originate: Local/150 answers, Dial(Local/5550002) is congested",
			Send: "Action: Originate\r\nActionID: orig-agent-congestion\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/5550002@inoffice\r\nTimeout: 30000\r\nAsync: true\r\nChannelId: sb-capture-18e\r\nOtherChannelId: sb-capture-18e-2\r\n\r\n",
			Wait: 2 * time.Second},
		{Title: "18f: the agent's Originate: Local/150 answers, Dial(Local/5550000) rings",
			Send: "Action: Originate\r\nActionID: orig-agent-ring\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/5550000@inoffice\r\nTimeout: 30000\r\nAsync: true\r\nChannelId: sb-capture-18f\r\nOtherChannelId: sb-capture-18f-2\r\n\r\n",
			Wait: 1500 * time.Millisecond},
		{Title: "18g: the caller of the ringing call hangs up (Hangup of Local/150;1 by regex, as hangup by uniqueid would by name)",
			Send: "Action: Hangup\r\nActionID: hangup-ringing\r\nChannel: /^Local.150@inoffice-.*;1$/\r\nCause: 16\r\n\r\n",
			Wait: 2 * time.Second},
	},
	// A supervisor's ChanSpy hung up while it listens to a call: Asterisk
	// answers at once, but a ChanSpy attached to a channel that carries
	// no frames (any Local channel) leaves only when its target does.
	"19-chanspy-hangup": {
		{Title: "19a: a call, as the agent places it: Local/150 answers, Dial(Local/+375296254070)",
			Send: "Action: Originate\r\nActionID: orig-call\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/+375296254070@inoffice\r\nTimeout: 30000\r\nAsync: true\r\nChannelId: sb-capture-19a\r\nOtherChannelId: sb-capture-19a-2\r\n\r\n",
			Wait: 1 * time.Second},
		{Title: "19b: the supervisor, as the agent places it: Local/151 answers, ChanSpy(<150's channel prefix>,bq)",
			Send: "Action: Originate\r\nActionID: orig-spy\r\nChannel: Local/151@inoffice\r\nApplication: ChanSpy\r\nData: Local/150@inoffice-00000000,bq\r\nTimeout: 30000\r\nAsync: true\r\nChannelId: sb-capture-19b\r\nOtherChannelId: sb-capture-19b-2\r\n\r\n",
			Wait: 1 * time.Second},
		{Title: "19c: Hangup of the supervisor's ChanSpy channel by name: Channel Hungup, and nothing else happens",
			Send: "Action: Hangup\r\nActionID: hangup-spy\r\nChannel: Local/151@inoffice-00000002;1\r\nCause: 16\r\n\r\n",
			Wait: 1500 * time.Millisecond},
		{Title: "19d: Status of the supervisor's channel: still there",
			Send: "Action: Status\r\nActionID: status-spy\r\nChannel: Local/151@inoffice-00000002;1\r\n\r\n",
			Wait: 500 * time.Millisecond},
		{Title: "19e: Hangup of the monitored call: ChanSpyStop, and the supervisor leaves with it",
			Send: "Action: Hangup\r\nActionID: hangup-call\r\nChannel: Local/150@inoffice-00000000;1\r\nCause: 16\r\n\r\n",
			Wait: 2 * time.Second},
	},
}

func main() {
	out := flag.String("out", ".", "directory the capture files are written to")
	flag.Parse()
	if flag.NArg() != 1 || scripts[flag.Arg(0)] == nil {
		fmt.Fprintf(os.Stderr, "usage: amicapture [-out DIR] NAME\nnames:")
		for n := range scripts {
			fmt.Fprintf(os.Stderr, " %s", n)
		}
		fmt.Fprintln(os.Stderr)
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "amicapture:", err)
		os.Exit(1)
	}
}

func run(name, out string) error {
	cfg, ok := asterisktest.FromEnv()
	if !ok {
		return fmt.Errorf("%s", asterisktest.SkipMessage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pbx, err := asterisktest.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer pbx.Close()
	return asterisktest.Capture(ctx, pbx.AMIAddr(), out, name, scripts[name])
}
