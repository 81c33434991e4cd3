package ops

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// silentPBX is a handler on fakeAMI, which answers every action Success
// and sends no event, as Asterisk does for the actions that do nothing
// (README item 22): call 9.1 is 150 (Local/150@…;1, uniqueid 9.1) talking
// to +375296254070 (9.3); every extension exists in the dialplan; 150 is
// a member of two queues.
func silentPBX(t *testing.T, timeout time.Duration) (*Handler, *fakeAMI) {
	t.Helper()
	f := newFakeAMI()
	f.list = &ami.ListResult{Items: []*ami.Message{
		item("Event", "ListDialplan", "Extension", "_1XX"),
		item("Event", "QueueMember", "Queue", "inbound", "Location", "Local/150@from-queue/n"),
		item("Event", "QueueMember", "Queue", "sales", "Location", "Local/150@from-queue/n"),
	}}
	tab := channels.New(channels.Config{})
	tab.Replace([]*ami.Message{
		item("Event", "CoreShowChannel", "Channel", "Local/150@inoffice-00000001;1", "Uniqueid", "9.1", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", "b1"),
		item("Event", "CoreShowChannel", "Channel", "Local/+375296254070@inoffice-00000002;1", "Uniqueid", "9.3", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", "b1"),
	})
	h, err := New(Config{AMI: f, Channels: tab, ConfirmTimeout: timeout, Recordings: RecordingConfig{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h, f
}

// confirmedRequests are operations confirmed by events, one of each way
// of waiting: one event, one per queue, a digit's DTMFEnd on the second
// session's op, a recording. want is in the not_confirmed answer.
var confirmedRequests = []struct {
	op   string
	args any
	want []string
}{
	{protocol.OpQueueMemberAdd, protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "555"},
		[]string{"Asterisk accepted QueueAdd but sent no QueueMemberAdded event within", "read=agent"}},
	{protocol.OpQueueMemberPause, protocol.QueueMemberPauseArgs{Extension: "150", Paused: true},
		[]string{"Asterisk accepted QueuePause but sent 0 of the 2 QueueMemberPause (Paused: 1) events expected within", "read=agent"}},
	{protocol.OpRecordingStart, protocol.RecordingStartArgs{CallID: "9.1"},
		[]string{"Asterisk accepted MixMonitor but sent no MixMonitorStart event within", "read=call"}},
	{protocol.OpTransfer, protocol.TransferArgs{CallID: "9.1", Transferer: "150", To: "160", Mode: protocol.TransferBlind},
		[]string{"Asterisk accepted BlindTransfer but sent no BlindTransfer event within", "read=call"}},
	{protocol.OpPark, protocol.ParkArgs{CallID: "9.1", Parker: "150"},
		[]string{"Asterisk accepted Park but sent no ParkedCall event within", "read=call"}},
	{protocol.OpDTMF, protocol.DTMFArgs{CallID: "9.1", Party: "150", Digits: "5"},
		[]string{"Asterisk accepted PlayDTMF but sent no DTMFEnd of digit 5 event within", "read=dtmf"}},
}

// TestNotConfirmed: Asterisk answers Success but the events that must
// follow never come. Every operation answers not_confirmed after the
// confirmation timeout, saying what it expected, for how long, and which
// read class carries it; each is counted under its op, and no waiter is
// left behind.
func TestNotConfirmed(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h, _ := silentPBX(t, timeout)
	for _, tc := range confirmedRequests {
		t.Run(tc.op, func(t *testing.T) {
			start := time.Now()
			resp := call(h, request(tc.op, tc.args))
			if d := time.Since(start); d < timeout {
				t.Errorf("gave up after %v, before the confirmation timeout", d)
			}
			for _, want := range append(tc.want, "within 100ms: it may not have happened", "the agent's AMI user lacks") {
				wantCode(t, tc.op, resp, protocol.ErrCodeNotConfirmed, want)
			}
		})
	}
	u := h.Stats().Unconfirmed
	for _, op := range confirmedOps {
		want := uint64(0)
		for _, tc := range confirmedRequests {
			if tc.op == op {
				want = 1
			}
		}
		if u[op] != want {
			t.Errorf("unconfirmed[%s] = %d, want %d (all: %v)", op, u[op], want, u)
		}
	}
	if n := h.waits.n.Load(); n != 0 {
		t.Errorf("%d waiters left behind", n)
	}
}

// TestConfirmationCutToDeadline: the wait for the events ends a margin
// before the request's deadline, so the answer is not_confirmed, in time,
// however long the confirmation timeout is.
func TestConfirmationCutToDeadline(t *testing.T) {
	h, _ := silentPBX(t, time.Minute)
	for _, tc := range confirmedRequests {
		t.Run(tc.op, func(t *testing.T) {
			req := request(tc.op, tc.args)
			req.Deadline = time.Now().Add(400 * time.Millisecond)
			resp := call(h, req)
			wantCode(t, tc.op, resp, protocol.ErrCodeNotConfirmed, tc.want[0])
			if time.Now().After(req.Deadline) {
				t.Errorf("answered after the request's deadline")
			}
		})
	}
}

// TestConfirmationLostWithAMI: when the AMI connection drops while an
// operation waits for the events that confirm it, it answers ami_down (it
// may or may not have run) at once, instead of waiting out its
// confirmation timeout and calling it not_confirmed.
func TestConfirmationLostWithAMI(t *testing.T) {
	const timeout = 30 * time.Second
	h, _ := silentPBX(t, timeout)
	for _, tc := range confirmedRequests {
		t.Run(tc.op, func(t *testing.T) {
			req := request(tc.op, tc.args)
			req.Deadline = time.Now().Add(2 * timeout)
			got := make(chan protocol.Response, 1)
			start := time.Now()
			go func() { got <- call(h, req) }()
			for h.waits.n.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			h.Observe(item("Event", ami.EventDisconnected, "Error", "read: connection reset by peer"))
			wantCode(t, tc.op, <-got, protocol.ErrCodeAMIDown, "may or may not have run")
			if d := time.Since(start); d > timeout/2 {
				t.Errorf("answered after %v: it waited for its confirmation", d)
			}
		})
	}
	for op, n := range h.Stats().Unconfirmed {
		if n != 0 {
			t.Errorf("unconfirmed[%s] = %d: a lost connection is not an unconfirmed operation", op, n)
		}
	}
}

// TestConfirmSeveralEvents: a wait for n events takes only matching ones,
// stops matching once it has n, and tells events that came before the
// connection dropped from those that did not.
func TestConfirmSeveralEvents(t *testing.T) {
	pause := func(queue string) *ami.Message {
		return item("Event", "QueueMemberPause", "Queue", queue, "Interface", "Local/150@from-queue/n", "Paused", "1")
	}
	disconnected := item("Event", ami.EventDisconnected, "Error", "EOF")
	for _, tc := range []struct {
		name   string
		events []*ami.Message
		code   string
		msg    string
	}{
		// Another member's event is not taken; one more after both is not
		// waited for (nor blocks Observe).
		{"both", []*ami.Message{pause("inbound"), item("Event", "QueueMemberPause", "Interface", "Local/151@from-queue/n", "Paused", "1"),
			pause("sales"), pause("inbound")}, "", ""},
		{"both before the drop", []*ami.Message{pause("inbound"), pause("sales"), disconnected}, "", ""},
		{"one then the drop", []*ami.Message{pause("inbound"), disconnected}, protocol.ErrCodeAMIDown, "may or may not have run"},
		{"one", []*ami.Message{pause("inbound")}, protocol.ErrCodeNotConfirmed, "sent 1 of the 2 QueueMemberPause events expected within 100ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := silentPBX(t, 100*time.Millisecond)
			w := h.expect(confirmation{op: protocol.OpQueueMemberPause, action: "QueuePause", events: "QueueMemberPause", class: "agent", n: 2,
				match: memberEvent("QueueMemberPause", "", "Local/150@from-queue/n", nil)})
			for _, m := range tc.events {
				h.Observe(m)
			}
			if n := h.waits.n.Load(); tc.code == "" && n != 0 {
				t.Errorf("still waiting after both events")
			}
			evs, err := h.confirm(context.Background(), w)
			if tc.code == "" {
				if err != nil || len(evs) != 2 || evs[0].Get("Queue") != "inbound" || evs[1].Get("Queue") != "sales" {
					t.Fatalf("events %v, err %v", evs, err)
				}
				return
			}
			if pe := ErrorFor(err); pe.Code != tc.code || !strings.Contains(pe.Message, tc.msg) {
				t.Fatalf("err %v (%+v), want %s with %q", err, pe, tc.code, tc.msg)
			}
			if tc.code == protocol.ErrCodeNotConfirmed && !errors.Is(err, ErrNotConfirmed) {
				t.Errorf("%v is not ErrNotConfirmed", err)
			}
			if n := h.waits.n.Load(); n != 0 {
				t.Errorf("%d waiters left behind", n)
			}
		})
	}
}
