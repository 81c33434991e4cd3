package calls

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

var fuzzQueueEvents = []string{
	"Newchannel", "Newchannel", "QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "DialEnd", "VarSet",
	"HangupRequest", "Hangup", "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "MixMonitorStart",
	"MixMonitorStop", "expect-recording", "cancel-recording", "expect-stop", "resync", EventDisconnected,
}

// FuzzTrackerQueuesRecordings drives the queue and recording events in
// any order about a few live channels: the tracker never panics, its call
// invariants hold (queue and recording events name a call and never
// follow its end), a caller leaves a queue at most once per join, and
// what it keeps per channel is gone once every channel hung up.
func FuzzTrackerQueuesRecordings(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 0, 0, 1, 5, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 14, 0, 0, 0, 12, 0, 0, 0, 16, 0, 0, 0, 13, 0, 0, 0, 8, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0, 8, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newClock()
		// Eviction (MaxCalls) is the main fuzz's: here every call is kept.
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 1000, MaxExpectations: 2})
		var uids []string
		live := map[string]bool{}
		var evs []protocol.Event
		pick := func(i byte) string {
			if len(uids) == 0 {
				return ""
			}
			return uids[int(i)%len(uids)]
		}
		for len(data) >= 4 {
			op, a, b, c := data[0], data[1], data[2], data[3]
			data = data[4:]
			clk.now = clk.now.Add(time.Duration(c) * 100 * time.Millisecond)
			kind := fuzzQueueEvents[int(op)%len(fuzzQueueEvents)]
			uid := pick(a)
			m := &ami.Message{}
			m.Add("Event", kind)
			switch kind {
			case "Newchannel":
				uid = fmt.Sprintf("17000.%d", len(uids))
				linked := uid
				if p := pick(b); p != "" && b%2 == 1 && live[p] {
					linked = tr.chans[p].leg.call.id
				}
				uids = append(uids, uid)
				live[uid] = true
				m.Add("Channel", fmt.Sprintf("Local/%d@queues-0000000%d;%d", 100+len(uids), len(uids), 1+int(c%2)))
				m.Add("ChannelState", "6")
				m.Add("Uniqueid", uid)
				m.Add("Linkedid", linked)
			case "expect-recording":
				if uid != "" {
					tr.ExpectRecording(uid, protocol.Recording{ID: "rec-" + strconv.Itoa(int(b)), CallID: uid})
				}
				continue
			case "cancel-recording":
				tr.CancelRecording(uid, "rec-"+strconv.Itoa(int(b)))
				continue
			case "expect-stop":
				tr.ExpectRecordingStop(uid, "rec-"+strconv.Itoa(int(b)))
				continue
			case "resync":
				var items []*ami.Message
				for _, u := range uids {
					if live[u] && b%2 == 0 {
						items = append(items, ami.NewAction("x", "Event", "CoreShowChannel", "Uniqueid", u,
							"Linkedid", tr.chans[u].leg.call.id, "Channel", tr.chans[u].name, "ChannelState", "6"))
					} else {
						live[u] = false
					}
				}
				evs = append(evs, tr.Resync(items)...)
				continue
			default:
				if uid == "" || !live[uid] {
					continue // Asterisk says nothing more of a channel that hung up
				}
				m.Add("Channel", "x")
				m.Add("Uniqueid", uid)
				if ch := tr.chans[uid]; ch != nil {
					m.Add("Linkedid", ch.leg.call.id)
				}
				m.Add("Queue", []string{"inbound", "sales"}[b%2])
				m.Add("Interface", fmt.Sprintf("Local/%d@from-queue/n", 100+b%4))
				m.Add("Paused", strconv.Itoa(int(c%2)))
				m.Add("HoldTime", strconv.Itoa(int(c)))
				m.Add("DestChannel", "Local/102@from-queue-00000009;1")
				m.Add("DialStatus", []string{"ANSWER", "CANCEL"}[c%2])
				m.Add("Variable", []string{"MEMBERINTERFACE", "MEMBERNAME", "QUEUESTATUS"}[c%3])
				m.Add("Value", "Local/103@from-queue/n")
				if kind == "Hangup" {
					live[uid] = false
				}
			}
			evs = append(evs, tr.Handle(m)...)
		}
		if bad := violations(evs); len(bad) > 0 {
			t.Fatalf("invariants broken:\n%v", bad)
		}
		joins, lefts := map[string]int{}, map[string]int{}
		for _, e := range evs {
			switch e.Type {
			case protocol.EventQueueCallerJoined:
				joins[e.Channel+e.Queue]++
			case protocol.EventQueueCallerLeft:
				lefts[e.Channel+e.Queue]++
				if e.HoldTimeS == nil || e.Reason == "" {
					t.Fatalf("caller_left without hold time or reason: %+v", e)
				}
			}
		}
		for k, n := range lefts {
			if n > joins[k] {
				t.Fatalf("%s left %d times after %d joins", k, n, joins[k])
			}
		}
		anyLive := false
		for _, l := range live {
			anyLive = anyLive || l
		}
		if !anyLive {
			for uid, cr := range tr.recs {
				if len(cr.running) > 0 {
					t.Fatalf("recordings of %s still running with every channel gone", uid)
				}
			}
			if len(tr.waiting) > 0 {
				t.Fatalf("%d callers still waiting with every channel gone", len(tr.waiting))
			}
		}
	})
}
