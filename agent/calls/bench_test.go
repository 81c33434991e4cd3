package calls

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// BenchmarkHandle03 replays capture 03 (originate → dial → bridge: 71 AMI
// messages, 37 of them CEL/VarSet/Newexten the tracker skips) through a
// fresh Tracker per iteration and reports AMI messages per second through
// Handle.
func BenchmarkHandle03(b *testing.B) {
	msgs := loadCapture(b, "03-originate-dial-bridge")
	clk := newClock()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tr := NewTracker(Config{Now: clk.Now})
		for _, m := range msgs {
			tr.Handle(m)
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkHandleSteadyState runs complete internal calls (start, ring,
// answer, bridge, hang up) through one long-lived Tracker with 1,000 calls
// in progress around them, so map sizes and eviction are realistic. The
// per-message Clone that gives each round fresh uniqueids is counted.
func BenchmarkHandleSteadyState(b *testing.B) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	for i := range 1000 {
		c := &chn{name: fmt.Sprintf("PJSIP/%d-%08x", 1000+i, i), uid: fmt.Sprintf("bg.%d", i), cid: fmt.Sprint(1000 + i), exten: "200", ctx: "from-internal", state: 4}
		c.linked = c.uid
		tr.Handle(newchannel(c))
	}
	const perCall = 15
	calls := make([][]*ami.Message, 64)
	for i := range calls {
		a := &chn{name: fmt.Sprintf("PJSIP/101-%08x", i), uid: fmt.Sprintf("%d.1", i), cid: "101", exten: "102", ctx: "from-internal", state: 4}
		a.linked = a.uid
		bb := &chn{name: fmt.Sprintf("PJSIP/102-%08x", i), uid: fmt.Sprintf("%d.2", i), linked: a.uid, cid: "101", exten: "s", ctx: "from-internal"}
		calls[i] = []*ami.Message{
			newchannel(a), newchannel(bb), dialBegin(a, bb, "102"),
			newstate(bb, 5), dialState(a, bb, "RINGING"),
			newstate(bb, 6), dialEnd(a, bb, "ANSWER"), newstate(a, 6),
			bridgeEnter(a, "br", 1), bridgeEnter(bb, "br", 2),
			hangupRequest(bb, 16), bridgeLeave(bb, "br", 1), hangup(bb, 16, "Normal Clearing"),
			bridgeLeave(a, "br", 0), hangup(a, 16, "Normal Clearing"),
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		// Uniqueids are never reused by Asterisk: rename per round so every
		// round is a new call (the old one is an ended tombstone).
		set := calls[n%len(calls)]
		round := fmt.Sprintf("r%d.", n)
		for _, m := range set {
			m = m.Clone()
			for i := range m.Headers {
				switch m.Headers[i].Key {
				case "Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid":
					m.Headers[i].Value = round + m.Headers[i].Value
				}
			}
			clk.now = clk.now.Add(time.Millisecond)
			tr.Handle(m)
		}
		n++
	}
	b.ReportMetric(float64(b.N*perCall)/b.Elapsed().Seconds(), "events/s")
}
