package calls

import (
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// queueScenario is the hangup-handler article's case (DESIGN, "Calls, in
// Asterisk terms"): an inbound call reaches queue "inbound", which rings
// operators Local/101@from-queue and Local/102@from-queue; 102 answers;
// later 102 makes a consultation call to 103 and completes an attended
// transfer, so the caller ends up talking to 103 and 102's channels hang
// up; finally the caller hangs up.
//
// It returns the steps and the instants the test checks against.
type queueTimes struct {
	start, answer, transfer, end time.Duration // offsets of the key messages
}

func queueScenario() ([]step, queueTimes) {
	trunk := &chn{name: "PJSIP/trunk-00000001", uid: "1700000000.1", linked: "1700000000.1", cid: "+375291112233", exten: "5000", ctx: "from-trunk", state: 4}
	l101a := &chn{name: "Local/101@from-queue-00000001;1", uid: "1700000000.2", linked: "1700000000.1", exten: "101", ctx: "from-queue"}
	l101b := &chn{name: "Local/101@from-queue-00000001;2", uid: "1700000000.3", linked: "1700000000.1", exten: "101", ctx: "from-queue", state: 4}
	l102a := &chn{name: "Local/102@from-queue-00000002;1", uid: "1700000000.4", linked: "1700000000.1", exten: "102", ctx: "from-queue"}
	l102b := &chn{name: "Local/102@from-queue-00000002;2", uid: "1700000000.5", linked: "1700000000.1", exten: "102", ctx: "from-queue", state: 4}
	p101 := &chn{name: "PJSIP/101-00000002", uid: "1700000000.6", linked: "1700000000.1", cid: "+375291112233", exten: "s", ctx: "from-internal"}
	p102 := &chn{name: "PJSIP/102-00000003", uid: "1700000000.7", linked: "1700000000.1", cid: "+375291112233", exten: "s", ctx: "from-internal"}
	// 102's consultation call.
	p102b := &chn{name: "PJSIP/102-00000004", uid: "1700000000.8", linked: "1700000000.8", cid: "102", exten: "103", ctx: "from-internal", state: 4}
	p103 := &chn{name: "PJSIP/103-00000005", uid: "1700000000.9", linked: "1700000000.8", cid: "102", exten: "s", ctx: "from-internal"}

	const (
		b1 = "11111111-0000-4000-8000-000000000001" // caller ↔ Local/102;1
		b2 = "22222222-0000-4000-8000-000000000002" // Local/102;2 ↔ PJSIP/102
		b3 = "33333333-0000-4000-8000-000000000003" // consultation 102 ↔ 103
	)
	steps := script(
		cel(trunk, "CHAN_START"), // CEL before Newchannel, as in the captures
		newchannel(trunk),
		newstate(trunk, 6), // Answer() before Queue()
		newchannel(l101a), newchannel(l101b),
		newchannel(l102a), newchannel(l102b),
		dialBegin(trunk, l101a, "Local/101@from-queue"),
		dialBegin(trunk, l102a, "Local/102@from-queue"),
		newchannel(p101), dialBegin(l101b, p101, "101"),
		newchannel(p102), dialBegin(l102b, p102, "102"),
		newstate(p101, 5), dialState(l101b, p101, "RINGING"),
		newstate(l101a, 5), dialState(trunk, l101a, "RINGING"),
		newstate(p102, 5), dialState(l102b, p102, "RINGING"),
		newstate(l102a, 5), dialState(trunk, l102a, "RINGING"),
		8*time.Second,
		newstate(p102, 6), // 102 picks up
		dialEnd(l102b, p102, "ANSWER"),
		newstate(l102b, 6), newstate(l102a, 6),
		dialEnd(trunk, l102a, "ANSWER"),
		dialEnd(trunk, l101a, "CANCEL"),
		hangupRequest(p101, 26),
		hangup(p101, 26, "Answered elsewhere"),
		hangup(l101b, 26, "Answered elsewhere"),
		hangup(l101a, 26, "Answered elsewhere"),
		bridgeEnter(l102b, b2, 1), bridgeEnter(p102, b2, 2),
		bridgeEnter(trunk, b1, 1), bridgeEnter(l102a, b1, 2),
		60*time.Second,
		// 102 consults 103 on a second line: a separate internal call.
		newchannel(p102b),
		newchannel(p103), dialBegin(p102b, p103, "103"),
		newstate(p103, 5), dialState(p102b, p103, "RINGING"),
		3*time.Second,
		newstate(p103, 6), dialEnd(p102b, p103, "ANSWER"),
		bridgeEnter(p102b, b3, 1), bridgeEnter(p103, b3, 2),
		20*time.Second,
		// Attended transfer: 103 takes 102's place in b2 and inherits the
		// caller's (older) linkedid; both of 102's channels hang up.
		bridgeLeave(p102, b2, 1),
		bridgeLeave(p103, b3, 1),
		func() any { p103.linked = trunk.linked; return bridgeEnter(p103, b2, 2) }(),
		bridgeLeave(p102b, b3, 0),
		hangupRequest(p102, 16),
		hangup(p102, 16, "Normal Clearing"),
		cdr(p102, "ANSWERED", 80), // only 102's share of the talk
		hangup(p102b, 16, "Normal Clearing"),
		240*time.Second,
		// The caller hangs up; everything left goes down behind it.
		hangupRequest(trunk, 16),
		bridgeLeave(trunk, b1, 1),
		hangup(trunk, 16, "Normal Clearing"),
		bridgeLeave(l102a, b1, 0),
		hangup(l102a, 16, "Normal Clearing"),
		bridgeLeave(l102b, b2, 1),
		hangup(l102b, 16, "Normal Clearing"),
		bridgeLeave(p103, b2, 0),
		hangup(p103, 16, "Normal Clearing"),
		cdr(trunk, "ANSWERED", 331), // Cdr after Hangup, as in the captures
	)
	var tm queueTimes
	var at time.Duration
	for _, s := range steps {
		at += s.wait
		uid := s.msg.Get("Uniqueid")
		switch {
		case s.msg.Event() == "Newchannel" && uid == trunk.uid:
			tm.start = at
		case s.msg.Event() == "Newstate" && uid == p102.uid && s.msg.Get("ChannelState") == "6":
			tm.answer = at
		case s.msg.Event() == "Hangup" && uid == p102b.uid:
			tm.transfer = at
		case s.msg.Event() == "Hangup" && uid == p103.uid:
			tm.end = at
		}
	}
	return steps, tm
}

func runSteps(tr *Tracker, clk *clock, steps []step) []protocol.Event {
	var out []protocol.Event
	for _, s := range steps {
		clk.now = clk.now.Add(s.wait)
		out = append(out, tr.Handle(s.msg)...)
	}
	return out
}

func TestQueueAnsweredByOperatorThenTransferred(t *testing.T) {
	steps, tm := queueScenario()
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	evs := runSteps(tr, clk, steps)
	calls, _ := byCall(evs)

	caller := calls["1700000000.1"]
	if got, want := summary(caller), "started(inbound +375291112233→5000 ringing) ringing answered(102) bridged ended(completed 16 by +375291112233)"; got != want {
		t.Fatalf("caller's call:\n got %s\nwant %s", got, want)
	}
	ans, end := caller[2], caller[len(caller)-1]
	if ans.AnsweredChannel != "PJSIP/102-00000003" || !ans.AnsweredAt.Equal(epoch.Add(tm.answer)) {
		t.Errorf("answered: channel %q at %v, want PJSIP/102-00000003 at %v", ans.AnsweredChannel, ans.AnsweredAt, epoch.Add(tm.answer))
	}
	if !end.EndedAt.Equal(epoch.Add(tm.end)) {
		t.Errorf("ended at %v, want the caller's hangup at %v (not the transfer at %v)", end.EndedAt, epoch.Add(tm.end), epoch.Add(tm.transfer))
	}
	if end.AnsweredBy != "102" || end.From != "+375291112233" || end.To != "5000" {
		t.Errorf("ended summary: answered_by %q from %q to %q", end.AnsweredBy, end.From, end.To)
	}
	if want := seconds(tm.end - tm.start); end.DurationS != want {
		t.Errorf("duration %d s, want %d", end.DurationS, want)
	}
	// Billsec runs to the caller's hangup: 102's Cdr (80 s) only covers
	// 102's share and must not be used after the transfer.
	if want := seconds(tm.end - tm.answer); end.BillsecS != want {
		t.Errorf("billsec %d s, want %d", end.BillsecS, want)
	}

	consult := calls["1700000000.8"]
	if got, want := summary(consult), "started(internal 102→103 ringing) ringing answered(103) bridged ended(completed 16 by 102)"; got != want {
		t.Fatalf("consultation call:\n got %s\nwant %s", got, want)
	}
	if e := consult[len(consult)-1]; !e.EndedAt.Equal(epoch.Add(tm.transfer)) {
		t.Errorf("consultation ended at %v, want at the transfer %v (103 moved to the caller's call)", e.EndedAt, epoch.Add(tm.transfer))
	}
	if tr.Live() != 0 {
		t.Errorf("Live() = %d after everything hung up", tr.Live())
	}
}
