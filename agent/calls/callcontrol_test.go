package calls

import (
	"fmt"
	"strings"
	"testing"

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
