package amitest

import (
	"strings"
	"testing"
	"time"
)

var queueCallEvents = selective{
	events: map[string]bool{"QueueCallerJoin": true, "AgentCalled": true, "QueueCallerLeave": true, "AgentConnect": true,
		"AgentComplete": true, "QueueCallerAbandon": true, "AgentRingNoAnswer": true},
	keys: []string{"Event", "Privilege", "Channel", "ChannelStateDesc", "CallerIDNum", "DestChannel", "Queue", "Position",
		"Count", "Interface", "MemberName", "Reason"},
}

// TestGoldenQueueCallRingall replays capture 14b: a caller put in queue
// inbound rings both operators; the one who answers first (102, then 101
// for the second caller: the phones of the lab answer after 1 s and the
// capture saw that order) is connected; the operator's phone hanging up
// completes the call with Reason agent, a Hangup of the member channel
// with Reason caller.
func TestGoldenQueueCallRingall(t *testing.T) {
	srv := NewServer(t, WithAuthFailDelay(20*time.Millisecond))
	first := func(ext, other string) {
		srv.SetOutcome(ext, Answer.AfterRinging(20*time.Millisecond))
		srv.SetOutcome(other, Answer.AfterRinging(300*time.Millisecond))
	}
	sel := queueCallEvents
	sel.beforeStep = func(title string) {
		switch {
		case strings.Contains(title, "orig-caller-1"):
			first("102", "101")
		case strings.Contains(title, "orig-caller-4"):
			first("101", "102")
		}
	}
	replaySelective(t, srv, "14b-queue-call-ringall", sel, 1)
}

// A caller while every operator is paused: only 199 rings, and never
// answers: AgentRingNoAnswer at the queue's timeout, in ms (14c); an
// operator unpaused meanwhile takes the call; a caller who hangs up
// while waiting abandons (14d).
func TestQueueCallNoAnswerAndAbandon(t *testing.T) {
	srv := NewServer(t, WithAuthFailDelay(20*time.Millisecond))
	srv.mu.Lock()
	srv.queueModel()[0].timeout = 100 * time.Millisecond
	srv.mu.Unlock()
	srv.SetOutcome("101", Answer.AfterRinging(10*time.Millisecond))
	rc := dialReplay(t, srv.Addr())
	rc.line()
	send := func(s string) { rc.write([]byte(strings.ReplaceAll(s, "\n", "\r\n") + "\r\n")) }
	until := func(prefix string) string {
		t.Helper()
		for {
			m := string(rc.mustMessage())
			if strings.HasPrefix(m, prefix) {
				return m
			}
		}
	}
	// queueCaller is the ;1 half of the Local pair calling the queue.
	queueCaller := func() string {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		var caller string
		for _, c := range srv.model.chans {
			if strings.HasPrefix(c.name, "Local/inbound@queues-") && c.half == 1 {
				caller = c.name
			}
		}
		return caller
	}
	send("Action: Login\nUsername: switchboard\nSecret: switchboard-secret\n")
	until("Response: Success")
	for _, ext := range []string{"101", "102"} {
		send("Action: QueuePause\nInterface: Local/" + ext + "@from-queue/n\nPaused: true\nReason: break\n")
		until("Event: QueueMemberPause")
	}
	send("Action: QueueAdd\nQueue: inbound\nInterface: Local/199@from-queue/n\nMemberName: Operator 199\n")
	until("Event: QueueMemberAdded")

	send("Action: Originate\nChannel: Local/inbound@queues\nApplication: Wait\nData: 600\nCallerID: \"Customer\" <+375296254070>\nAsync: true\n")
	until("Event: QueueCallerJoin")
	if m := until("Event: AgentCalled"); !strings.Contains(m, "Interface: Local/199@from-queue/n") {
		t.Fatalf("the only member available is 199: %s", m)
	}
	if m := until("Event: AgentRingNoAnswer"); !strings.Contains(m, "Interface: Local/199@from-queue/n") || !strings.Contains(m, "RingTime: 1") {
		t.Fatalf("AgentRingNoAnswer: %s", m)
	}
	send("Action: QueuePause\nInterface: Local/101@from-queue/n\nPaused: false\n")
	if m := until("Event: AgentConnect"); !strings.Contains(m, "Interface: Local/101@from-queue/n") {
		t.Fatalf("AgentConnect: %s", m)
	}
	send("Action: Hangup\nChannel: " + queueCaller() + "\n")
	if m := until("Event: AgentComplete"); !strings.Contains(m, "Reason: caller") {
		t.Fatalf("AgentComplete: %s", m)
	}

	// 14d: nobody can answer; the caller hangs up while waiting.
	send("Action: QueuePause\nInterface: Local/101@from-queue/n\nPaused: true\nReason: meeting\n")
	until("Event: QueueMemberPause")
	send("Action: Originate\nChannel: Local/inbound@queues\nApplication: Wait\nData: 600\nCallerID: \"Customer\" <+375296254070>\nAsync: true\n")
	until("Event: QueueCallerJoin")
	send("Action: QueueStatus\nQueue: inbound\nActionID: st\n")
	if m := until("Event: QueueEntry"); !strings.Contains(m, "CallerIDNum: +375296254070") || !strings.Contains(m, "Position: 1") {
		t.Fatalf("QueueEntry: %s", m)
	}
	send("Action: Hangup\nChannel: " + queueCaller() + "\n")
	if m := until("Event: QueueCallerAbandon"); !strings.Contains(m, "OriginalPosition: 1") {
		t.Fatalf("QueueCallerAbandon: %s", m)
	}
	until("Event: QueueCallerLeave")
	send("Action: QueueSummary\nQueue: inbound\n")
	if m := until("Event: QueueSummary"); !strings.Contains(m, "Callers: 0") {
		t.Fatalf("QueueSummary: %s", m)
	}
}
