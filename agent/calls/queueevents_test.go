package calls

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// isQueueRecording: queue and recording events, which are not steps of a
// call's lifecycle.
func isQueueRecording(typ string) bool {
	return strings.HasPrefix(typ, "queue.") || strings.HasPrefix(typ, "recording.")
}

// checkQueueRecording is checkEvents' part for queue and recording
// events: a member event belongs to no call; a caller's or a recording's
// names its call, and never follows that call's end.
func checkQueueRecording(e protocol.Event, at string, rank map[string]int, bad []string) []string {
	if !isQueueRecording(e.Type) || strings.HasPrefix(e.Type, "queue.member_") {
		return bad
	}
	if e.CallID == "" {
		bad = append(bad, at+": no call id")
	}
	if rank[e.CallID] == lifecycleRank[protocol.EventCallEnded] {
		bad = append(bad, at+": after call.ended")
	}
	return bad
}

// queueSummary renders queue events compactly.
func queueSummary(evs []protocol.Event) string {
	var b []string
	for _, e := range evs {
		switch e.Type {
		case protocol.EventQueueCallerJoined:
			b = append(b, fmt.Sprintf("joined(%s %s #%d %s)", e.Queue, e.CallID, e.Position, e.From))
		case protocol.EventQueueCallerLeft:
			hold := -1
			if e.HoldTimeS != nil {
				hold = *e.HoldTimeS
			}
			s := fmt.Sprintf("left(%s %s %s hold %d", e.Queue, e.CallID, e.Reason, hold)
			if e.AnsweredBy != "" {
				s += " by " + e.AnsweredBy + " " + e.Member + " " + e.MemberName
			}
			b = append(b, s+")")
		case protocol.EventQueueMemberAdded, protocol.EventQueueMemberRemoved, protocol.EventQueueMemberPaused, protocol.EventQueueMemberUnpaused:
			s := fmt.Sprintf("%s(%s %s %s)", strings.TrimPrefix(e.Type, "queue."), e.Queue, e.Extension, e.MemberName)
			if e.Reason != "" {
				s = strings.TrimSuffix(s, ")") + " " + e.Reason + ")"
			}
			b = append(b, s)
		}
	}
	return strings.Join(b, "\n")
}

func TestQueueEventsFromCaptures(t *testing.T) {
	for _, tc := range []struct {
		capture string
		want    []string
	}{
		{"14-queue-admin", []string{
			"member_added(inbound 103 Operator 103)",
			"member_added(inbound 555 Ghost)", // NoSuchTech/555: the tracker's extOf, like answered_by
			"member_unpaused(inbound 103 Operator 103)",
			"member_paused(inbound 101 Operator 101 lunch)",
			"member_paused(inbound 101 Operator 101 still-lunch)", // pausing a paused member repeats (14l)
			"member_unpaused(inbound 101 Operator 101)",
			"member_removed(inbound 103 Operator 103)",
			"member_removed(inbound 555 Ghost)",
		}},
		{"14b-queue-call-ringall", []string{
			"joined(inbound 1796529714.66 #1 +375296254070)",
			"left(inbound 1796529714.66 answered hold 0 by 102 Local/102@from-queue/n Operator 102)",
			"joined(inbound 1796529722.72 #1 +375296254070)",
			"left(inbound 1796529722.72 answered hold 0 by 101 Local/101@from-queue/n Operator 101)",
		}},
		{"14c-queue-call-noanswer", []string{
			"member_paused(inbound 101 Operator 101 break)",
			"member_paused(inbound 102 Operator 102 break)",
			"member_added(inbound 199 Operator 199)",
			"joined(inbound 1796529732.78 #1 +375296254070)",
			"member_unpaused(inbound 101 Operator 101)",
			"left(inbound 1796529732.78 answered hold 0 by 101 Local/101@from-queue/n Operator 101)",
		}},
		{"14d-queue-call-abandon", []string{
			"member_paused(inbound 101 Operator 101 meeting)",
			"joined(inbound 1796529747.86 #1 +375296254070)",
			"left(inbound 1796529747.86 abandoned hold 3)",
			"member_unpaused(inbound 101 Operator 101)",
			"member_unpaused(inbound 102 Operator 102)",
			"member_removed(inbound 199 Operator 199)",
		}},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			clk := newClock()
			tr := NewTracker(Config{Now: clk.Now})
			msgs := loadCapture(t, tc.capture)
			evs := feed(tr, clk, msgs)
			if bad := violations(evs); len(bad) > 0 {
				t.Fatalf("invariants broken:\n%v", bad)
			}
			// The captures carry no Timestamp header and the test clock
			// moves 1 ms per message: an answered caller's hold time (the
			// clock's, from join to leave) reads 0 here; an abandon's is
			// Asterisk's HoldTime (TestQueueHoldTime checks the clock's).
			got := queueSummary(evs)
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Fatalf("queue events:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// msg builds an AMI event from key/value pairs.
func msg(kv ...string) *ami.Message {
	m := &ami.Message{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, ami.Header{Key: kv[i], Value: kv[i+1]})
	}
	return m
}

// Queue()'s timeout reports an abandon too (measured on the lab's
// Asterisk 22: QueueCallerAbandon, QueueCallerLeave, then QUEUESTATUS
// TIMEOUT), but nobody hung up: it is a timeout. An answered caller's
// hold time is the clock's, join to leave.
func TestQueueHoldTimeAndTimeout(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	caller := []string{"Channel", "PJSIP/trunk-00000001", "Uniqueid", "1.1", "Linkedid", "1.1", "CallerIDNum", "+375291112233"}
	step := func(wait time.Duration, kv ...string) []protocol.Event {
		clk.now = clk.now.Add(wait)
		return tr.Handle(msg(append(kv, caller...)...))
	}
	var evs []protocol.Event
	evs = append(evs, step(0, "Event", "Newchannel", "ChannelState", "4", "Exten", "5000")...)
	evs = append(evs, step(0, "Event", "QueueCallerJoin", "Queue", "sales", "Position", "2", "Count", "2")...)
	evs = append(evs, step(30*time.Second, "Event", "QueueCallerAbandon", "Queue", "sales", "Position", "1", "HoldTime", "30")...)
	evs = append(evs, step(0, "Event", "QueueCallerLeave", "Queue", "sales", "Position", "1", "Count", "0")...)
	// The caller stays in the dialplan, joins again and is answered 12 s later.
	evs = append(evs, step(time.Second, "Event", "QueueCallerJoin", "Queue", "sales", "Position", "1", "Count", "1")...)
	clk.now = clk.now.Add(12 * time.Second)
	evs = append(evs, tr.Handle(msg("Event", "DialEnd", "Channel", "PJSIP/trunk-00000001", "Uniqueid", "1.1", "Linkedid", "1.1",
		"DestChannel", "PJSIP/104-00000002", "DestUniqueid", "1.2", "DialStatus", "ANSWER"))...)
	evs = append(evs, step(0, "Event", "QueueCallerLeave", "Queue", "sales", "Position", "1", "Count", "0")...)
	want := strings.Join([]string{
		"joined(sales 1.1 #2 +375291112233)",
		"left(sales 1.1 timeout hold 30)",
		"joined(sales 1.1 #1 +375291112233)",
		"left(sales 1.1 answered hold 12 by 104 PJSIP/104-00000002 )",
	}, "\n")
	if got := queueSummary(evs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if bad := violations(evs); len(bad) > 0 {
		t.Fatal(bad)
	}
}
