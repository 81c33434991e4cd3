package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// TestCheckOperations: what a least-privilege user (write =
// originate,call,reporting) lists, as measured on Asterisk 22.10.1, lets
// every call-control operation run but mute.
func TestCheckOperations(t *testing.T) {
	minimal := ami.NewAction("x")
	for _, a := range []string{"Originate", "Hangup", "Status", "CoreShowChannels", "CoreSettings", "ShowDialPlan", "BlindTransfer",
		"Atxfer", "CancelAtxfer", "PlayDTMF", "Park", "Parkinglots", "ParkedCalls"} {
		minimal.Add(a, "…  (Priv: call,all)")
	}
	tests := []struct {
		name string
		ops  []string
		want string
	}{
		{"every op", nil, "warn  ami operations   may not run mute (MuteAudio needs write=system): grant the class in manager.conf, or leave the operation out of ops"},
		{"mute left out", []string{"originate", "transfer", "dtmf"}, "ok    ami operations   may run transfer, dtmf; dtmf is confirmed from DTMF events: read= must include dtmf"},
		{"none enabled", []string{"originate"}, "ok    ami operations   no call-control operation is enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			checkOperations(&checkReport{w: &out}, agent.Config{Ops: tc.ops}, minimal)
			if !strings.HasPrefix(out.String(), tc.want) {
				t.Errorf("got  %q\nwant %q…", out.String(), tc.want)
			}
		})
	}
}
