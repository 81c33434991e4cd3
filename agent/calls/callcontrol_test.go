package calls

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// ccSummary renders a call's lifecycle with its transfer and park facts.
func ccSummary(evs []protocol.Event) string {
	var b []string
	for _, e := range evs {
		short := strings.TrimPrefix(e.Type, "call.")
		switch {
		case e.Transfer != nil:
			x := e.Transfer
			s := fmt.Sprintf("%s(%s %s by %s", short, x.Mode, x.To, x.By)
			if x.TargetChannel != "" {
				s += " target " + extOf(x.TargetChannel)
			}
			b = append(b, s+")")
		case e.Park != nil:
			p := e.Park
			s := fmt.Sprintf("%s(%s %s parker %s", short, p.Lot, p.Space, p.Parker)
			if p.By != "" {
				s += " by " + p.By
			}
			if p.RetrievedBy != "" {
				s += " to " + p.RetrievedBy
			}
			b = append(b, s+")")
		case e.Type == protocol.EventCallAnswered:
			b = append(b, fmt.Sprintf("%s(%s)", short, e.AnsweredBy))
		case e.Type == protocol.EventCallEnded:
			b = append(b, fmt.Sprintf("%s(%s %d by %s, answered by %s)", short, e.Status, e.Cause, e.HungupBy, e.AnsweredBy))
		default:
			b = append(b, short)
		}
	}
	return strings.Join(b, " ")
}

// feedHinted replays msgs like feed, giving the tracker the agent's hints
// right after the Response of the action that carried them (the agent
// gives them before it sends the action; the tracker only needs them
// before the action's events).
func feedHinted(tr *Tracker, clk *clock, msgs []*ami.Message, hints map[string]func()) []protocol.Event {
	var out []protocol.Event
	for _, m := range msgs {
		clk.now = clk.now.Add(clk.step)
		out = append(out, tr.Handle(m)...)
		if h := hints[m.ActionID()]; h != nil && m.IsResponse() {
			h()
			delete(hints, m.ActionID())
		}
	}
	return out
}

// TestReplayCallControl replays capture 20 as the agent sees it when its
// own operations made the transfers, parks and pickup: each call's
// transfer and park events name who asked, answered_by stays the party who
// first answered, hungup_by is the party that really ended the call (not
// the transferer, the parker or a cancelled consultation, who only left
// it), and the pickup's channels are a leg of the parked call, not a call
// of their own.
func TestReplayCallControl(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	hints := map[string]func(){
		"blindxfer":    func() { tr.ExpectTransfer("sb-capture-20a", "key_0367a", protocol.TransferBlind, "160") },
		"atxfer-160":   func() { tr.ExpectTransfer("sb-capture-20h", "op-7", protocol.TransferAttended, "160") },
		"atxfer-161":   func() { tr.ExpectTransfer("sb-capture-20h", "op-7", protocol.TransferAttended, "161") },
		"park":         func() { tr.ExpectPark("1796540014.14", "op-7") },
		"orig-pickup":  func() { tr.ExpectPickup("sb-capture-20x", "sb-capture-20n", "op-9") },
		"park-timeout": func() { tr.ExpectPark("1796540023.20", "key_0367a") },
	}
	calls, order := byCall(feedHinted(tr, clk, loadCapture(t, "20-call-control"), hints))
	if len(hints) != 0 {
		t.Fatalf("hints not given (capture changed?): %v", hints)
	}
	want := map[string]string{
		"sb-capture-20a": "started answered(+375296254070) bridged " +
			"transfer_started(blind 160 by key_0367a) transferred(blind 160 by key_0367a) " +
			"ended(completed 16 by +375296254070, answered by +375296254070)",
		"sb-capture-20h": "started answered(+375296254070) bridged " +
			"transfer_started(attended 160 by op-7) transfer_canceled(attended 160 by op-7) " +
			"transfer_started(attended 161 by op-7) transferred(attended 161 by op-7 target 161) " +
			"ended(completed 16 by 161, answered by +375296254070)",
		"sb-capture-20n": "started answered(+375296254070) bridged parked(default 701 parker 150 by op-7) " +
			"unparked(default 701 parker 150 by op-9 to 160) ended(completed 16 by +375296254070, answered by +375296254070)",
		"sb-capture-20z": "started answered(+375296254070) bridged parked(operators 901 parker 150 by key_0367a) " +
			"park_timeout(operators 901 parker 150 by key_0367a) ended(completed 16 by +375296254070, answered by +375296254070)",
	}
	if len(order) != len(want) {
		t.Errorf("calls %v, want %d (the pickup is no call of its own)", order, len(want))
	}
	for id, w := range want {
		if got := ccSummary(calls[id]); got != w {
			t.Errorf("call %s:\n got %s\nwant %s", id, got, w)
		}
	}
	// The transferred call ended when its last party did, long after the
	// transferer left: its end is that party's Hangup.
	a := calls["sb-capture-20a"]
	xfer, end := a[len(a)-2], a[len(a)-1]
	if !end.EndedAt.After(xfer.Time) || end.DurationS < 0 {
		t.Errorf("transferred at %v, ended at %v", xfer.Time, end.EndedAt)
	}
}

// TestReplayTransfersNotPlacedByTheAgent: transfers made without the
// agent (capture 12b's BlindTransfer, 13's Atxfer completed by a hangup)
// still give transfer events, naming the transferer's extension as who
// did it.
func TestReplayTransfersNotPlacedByTheAgent(t *testing.T) {
	for _, tc := range []struct {
		capture, call, want string
	}{
		{"12b-blindtransfer", "1796529597.16", "started answered(+375296254070) bridged " +
			"transfer_started(blind 161 by 150) transferred(blind 161 by 150) ended(completed 16 by 161, answered by +375296254070)"},
		{"20-call-control", "sb-capture-20h", "started answered(+375296254070) bridged " +
			"transfer_started(attended 161 by 150) transferred(attended 161 by 150 target 161) ended(completed 16 by 161, answered by +375296254070)"},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			clk := newClock()
			tr := NewTracker(Config{Now: clk.Now})
			calls, _ := byCall(feed(tr, clk, loadCapture(t, tc.capture)))
			if got := ccSummary(calls[tc.call]); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCallControlFieldsBounded: transfer and park facts are cut to the
// field limit like every other text field.
func TestCallControlFieldsBounded(t *testing.T) {
	long := strings.Repeat("x", 200)
	e := protocol.Event{Type: protocol.EventCallTransferred, Transfer: &protocol.TransferInfo{Mode: "blind", To: long, By: "k"},
		Park: &protocol.ParkInfo{Lot: "default", Channel: long}}
	if !boundFields(&e, 64) || len(e.Transfer.To) != 64 || len(e.Park.Channel) != 64 || e.Transfer.By != "k" {
		t.Fatalf("bounded %+v %+v", e.Transfer, e.Park)
	}
	if got := strings.Join(e.Truncated, ","); got != "transfer.to,park.channel" {
		t.Errorf("truncated %s", got)
	}
}

// ccFuzzEvents are the events FuzzCallControl mixes: a call's own, and
// those of transfers and parking, with the agent's hints.
var ccFuzzEvents = []string{
	"Newchannel", "Newchannel", "BridgeEnter", "BridgeLeave", "Newstate", "Hangup", "Hangup",
	"BlindTransfer", "AttendedTransfer", "Hold", "Unhold", "ParkedCall", "UnParkedCall", "ParkedCallTimeOut",
	"expect-transfer", "expect-park", "expect-pickup",
}

// FuzzCallControl: whatever order transfer and park events come in, with
// or without hints, a call's events stay between its call.started and its
// one call.ended, every transfer or park event carries its facts, and
// Live() stays consistent.
func FuzzCallControl(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 0, 2, 0, 3, 0, 2, 1, 3, 0, 14, 0, 0, 1, 7, 0, 1, 0, 5, 0, 0, 0, 5, 1, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 0, 2, 0, 0, 0, 2, 1, 0, 0, 14, 0, 0, 0, 9, 0, 0, 0, 0, 2, 1, 0, 10, 0, 0, 0, 8, 0, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 0, 2, 0, 0, 0, 2, 1, 0, 0, 15, 1, 0, 0, 11, 1, 0, 0, 16, 0, 0, 0, 0, 3, 0, 0, 12, 1, 0, 0, 13, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 4, MaxLegsPerCall: 4, MaxExpectations: 2})
		var uids, linked, names []string
		var evs []protocol.Event
		pick := func(i byte) int {
			if len(uids) == 0 {
				return -1
			}
			return int(i) % len(uids)
		}
		for n := 0; len(data) >= 4; n++ {
			op, a, b, c := data[0], data[1], data[2], data[3]
			data = data[4:]
			clk.now = clk.now.Add(10 * time.Millisecond)
			kind := ccFuzzEvents[int(op)%len(ccFuzzEvents)]
			m := &ami.Message{}
			m.Add("Event", kind)
			chanOf := func(prefix string, i int) {
				if i >= 0 {
					m.Add(prefix+"Channel", names[i])
					m.Add(prefix+"Uniqueid", uids[i])
					m.Add(prefix+"Linkedid", linked[i])
				}
			}
			switch kind {
			case "Newchannel":
				uid := fmt.Sprintf("9.%d", n)
				lid := uid
				if j := pick(b); j >= 0 && a%2 == 1 {
					lid = linked[j]
				}
				uids, linked = append(uids, uid), append(linked, lid)
				names = append(names, fmt.Sprintf("Local/%d@inoffice-%08x;%d", 150+int(a%4), n, 1+int(c%2)))
				chanOf("", len(uids)-1)
				m.Add("ChannelState", strconv.Itoa(int(c%7)))
			case "BridgeEnter", "BridgeLeave":
				chanOf("", pick(a))
				m.Add("BridgeUniqueid", "b"+strconv.Itoa(int(b%2)))
			case "Newstate", "Hangup", "Hold", "Unhold":
				chanOf("", pick(a))
				m.Add("ChannelState", "6")
			case "BlindTransfer":
				chanOf("Transferer", pick(a))
				chanOf("Transferee", pick(b))
				m.Add("Result", []string{"Success", "Invalid", "Fail"}[c%3])
				m.Add("Extension", "160")
			case "AttendedTransfer":
				chanOf("OrigTransferer", pick(a))
				chanOf("SecondTransferer", pick(a))
				if c%2 == 0 {
					chanOf("TransferTarget", pick(b))
				}
				m.Add("Result", []string{"Success", "Fail"}[c%2])
			case "ParkedCall", "UnParkedCall", "ParkedCallTimeOut":
				chanOf("Parkee", pick(a))
				chanOf("Retriever", pick(b))
				m.Add("Parkinglot", "default")
				m.Add("ParkingSpace", "701")
				m.Add("ParkerDialString", "Local/150@inoffice")
				m.Add("ParkingTimeout", strconv.Itoa(int(c)))
				if c%5 == 0 {
					m.Add("ActionID", "list") // a ParkedCalls item: no park
				}
			case "expect-transfer":
				if i := pick(a); i >= 0 {
					tr.ExpectTransfer(uids[i], "key_1", []string{"blind", "attended"}[b%2], "160")
				}
				continue
			case "expect-park":
				if i := pick(a); i >= 0 {
					tr.ExpectPark(uids[i], "key_1")
				}
				continue
			case "expect-pickup":
				if i := pick(a); i >= 0 {
					tr.ExpectPickup(fmt.Sprintf("9.%d", n+1+int(b%2)), linked[i], "key_1")
				}
				continue
			}
			evs = append(evs, tr.Handle(m)...)
			if tr.Live() < 0 {
				t.Fatalf("Live %d", tr.Live())
			}
		}
		state := map[string]string{} // call id → "" (none yet), "live", "ended"
		for i, e := range evs {
			switch {
			case e.Type == protocol.EventCallStarted:
				if state[e.CallID] == "live" {
					t.Fatalf("event %d: call %s started twice", i, e.CallID)
				}
				state[e.CallID] = "live"
			case state[e.CallID] != "live":
				t.Fatalf("event %d: %s of call %s outside its life (%q)", i, e.Type, e.CallID, state[e.CallID])
			case e.Type == protocol.EventCallEnded:
				state[e.CallID] = "ended"
			case strings.HasPrefix(e.Type, "call.transfer") && (e.Transfer == nil || e.Transfer.Mode == ""),
				strings.Contains(e.Type, "park") && (e.Park == nil || e.Park.Lot == ""):
				t.Fatalf("event %d: %s without its facts: %+v", i, e.Type, e)
			}
		}
	})
}
