package calls

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Calls nobody placed through the API: phones and trunks, built from
// capture-shaped events.
func TestPhonesAndTrunks(t *testing.T) {
	phone := func(ext, uid, linked, dialled string) *chn {
		return &chn{name: "PJSIP/" + ext + "-0000000" + uid[len(uid)-1:], uid: uid, linked: linked, cid: ext, exten: dialled, ctx: "from-internal", state: 4}
	}
	cases := []struct {
		name  string
		build func() []*ami.Message
		want  string
	}{
		{
			name: "internal call answered, callee hangs up",
			build: func() []*ami.Message {
				a := phone("101", "1.1", "1.1", "102")
				b := &chn{name: "PJSIP/102-00000002", uid: "1.2", linked: "1.1", cid: "101", exten: "s", ctx: "from-internal"}
				return []*ami.Message{
					newchannel(a), newchannel(b), dialBegin(a, b, "102"),
					newstate(b, 5), dialState(a, b, "RINGING"),
					newstate(b, 6), dialEnd(a, b, "ANSWER"), newstate(a, 6),
					bridgeEnter(a, "b", 1), bridgeEnter(b, "b", 2),
					hangupRequest(b, 16), bridgeLeave(b, "b", 1), hangup(b, 16, "Normal Clearing"),
					bridgeLeave(a, "b", 0), hangup(a, 16, "Normal Clearing"),
				}
			},
			want: "started(internal 101→102 ringing) ringing answered(102) bridged ended(completed 16 by 102)",
		},
		{
			name: "outbound call through a trunk, busy",
			build: func() []*ami.Message {
				a := phone("101", "2.1", "2.1", "80291234567")
				b := &chn{name: "PJSIP/trunk-00000003", uid: "2.2", linked: "2.1", cid: "101", exten: "s", ctx: "from-trunk"}
				return []*ami.Message{
					newchannel(a), newchannel(b), dialBegin(a, b, "trunk/80291234567"),
					dialEnd(a, b, "BUSY"), hangup(b, 17, "User busy"),
					hangupRequest(a, 17), hangup(a, 17, "User busy"),
				}
			},
			want: "started(outbound 101→80291234567 ringing) ended(busy 17)",
		},
		{
			name: "inbound call, caller gives up while the phone rings",
			build: func() []*ami.Message {
				a := &chn{name: "PJSIP/trunk-00000004", uid: "3.1", linked: "3.1", cid: "+375291112233", exten: "5000", ctx: "from-trunk", state: 4}
				b := &chn{name: "PJSIP/101-00000005", uid: "3.2", linked: "3.1", cid: "+375291112233", exten: "s", ctx: "from-internal"}
				return []*ami.Message{
					newchannel(a), newchannel(b), dialBegin(a, b, "101"),
					newstate(b, 5), dialState(a, b, "RINGING"),
					hangupRequest(a, 16), dialEnd(a, b, "CANCEL"),
					hangup(b, 0, "Unknown"), hangup(a, 16, "Normal Clearing"),
				}
			},
			want: "started(inbound +375291112233→5000 ringing) ringing ended(canceled 16 by +375291112233)",
		},
		{
			name: "inbound call, nobody answers before Dial's timeout",
			build: func() []*ami.Message {
				a := &chn{name: "PJSIP/trunk-00000006", uid: "4.1", linked: "4.1", cid: "+375291112233", exten: "5000", ctx: "from-trunk", state: 4}
				b := &chn{name: "PJSIP/101-00000007", uid: "4.2", linked: "4.1", cid: "+375291112233", exten: "s", ctx: "from-internal"}
				return []*ami.Message{
					newchannel(a), newchannel(b), dialBegin(a, b, "101"),
					newstate(b, 5), dialState(a, b, "RINGING"),
					dialEnd(a, b, "NOANSWER"), hangup(b, 19, "User alerting, no answer"),
					hangup(a, 16, "Normal Clearing"),
				}
			},
			want: "started(inbound +375291112233→5000 ringing) ringing ended(no-answer 19)",
		},
		{
			name: "inbound call served by the PBX alone (IVR)",
			build: func() []*ami.Message {
				a := &chn{name: "PJSIP/trunk-00000008", uid: "5.1", linked: "5.1", cid: "+375291112233", exten: "5000", ctx: "from-trunk", state: 4}
				return []*ami.Message{newchannel(a), newstate(a, 6), hangupRequest(a, 16), hangup(a, 16, "Normal Clearing")}
			},
			want: "started(inbound +375291112233→5000 ringing) ended(completed 16 by +375291112233)",
		},
		{
			name: "outbound call, trunk congested",
			build: func() []*ami.Message {
				a := phone("101", "6.1", "6.1", "80291234567")
				b := &chn{name: "PJSIP/trunk-00000009", uid: "6.2", linked: "6.1", cid: "101", exten: "s", ctx: "from-trunk"}
				return []*ami.Message{
					newchannel(a), newchannel(b), dialBegin(a, b, "trunk/80291234567"),
					hangup(b, 34, "Circuit/channel congestion"), dialEnd(a, b, "CONGESTION"),
					hangup(a, 16, "Normal Clearing"),
				}
			},
			want: "started(outbound 101→80291234567 ringing) ended(failed 34)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			tr := NewTracker(Config{Now: clk.Now})
			evs := feed(tr, clk, tc.build())
			if bad := violations(evs); len(bad) > 0 {
				t.Fatalf("invariants broken: %v", bad)
			}
			if got := summary(evs); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			if tr.Live() != 0 {
				t.Errorf("Live() = %d", tr.Live())
			}
		})
	}
}

// A call whose channels vanish while AMI is down is ended on Resync, once,
// with what was known; calls still listed continue.
func TestResetAndResync(t *testing.T) {
	t.Run("vanished during the outage", func(t *testing.T) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now})
		evs := feed(tr, clk, loadCapture(t, "03-originate-dial-bridge"))
		tr.Handle(&ami.Message{Headers: []ami.Header{{Key: "Event", Value: EventDisconnected}}})
		tr.Handle(&ami.Message{Headers: []ami.Header{{Key: "Event", Value: EventConnected}}})
		clk.now = clk.now.Add(30 * time.Second)
		end := tr.Resync(nil)
		if len(end) != 1 {
			t.Fatalf("Resync returned %d events, want one call.ended: %+v", len(end), end)
		}
		e := end[0]
		if e.Type != protocol.EventCallEnded || e.CallID != "1795337002.0" || e.Status != protocol.CallCompleted ||
			e.Cause != 0 || e.CauseText != "unknown (AMI reconnect)" || e.AnsweredBy != "+375296254070" || e.BillsecS != 30 {
			t.Errorf("ended = %+v", e)
		}
		if bad := violations(append(evs, end...)); len(bad) > 0 {
			t.Errorf("invariants broken: %v", bad)
		}
		if again := tr.Resync(nil); len(again) != 0 || tr.Live() != 0 {
			t.Errorf("second Resync: %+v, Live %d", again, tr.Live())
		}
	})
	t.Run("still live: the call continues", func(t *testing.T) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now})
		items := liveItems(t, "05-coreshowchannels")
		evs := tr.Resync(items)
		tr.Reset()
		if more := tr.Resync(items); len(more) != 0 {
			t.Fatalf("Resync with the same channels emitted %+v", more)
		}
		evs = append(evs, feed(tr, clk, loadCapture(t, "08-hangup"))...)
		calls, _ := byCall(evs)
		if got, want := summary(calls["1795337025.18"]), "started(originate 150→+375296254070 queued) answered(+375296254070) bridged ended(completed 16 by 150)"; got != want {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
		if bad := violations(evs); len(bad) > 0 {
			t.Errorf("invariants broken: %v", bad)
		}
	})
}

func TestMaxCallsEvictsOldest(t *testing.T) {
	t.Run("ended calls go first", func(t *testing.T) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 2})
		evs := feed(tr, clk, loadCapture(t, "04-originate-failures"))
		for _, e := range evs {
			if strings.Contains(e.CauseText, "evicted") {
				t.Fatalf("a call was evicted while ended ones could go: %+v", e)
			}
		}
		if n := len(tr.calls); n > 2 {
			t.Errorf("%d calls tracked, MaxCalls 2", n)
		}
	})
	t.Run("then the oldest live call, with a call.ended", func(t *testing.T) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 3})
		var evs []protocol.Event
		for i := range 5 {
			uid := fmt.Sprintf("9.%d", i)
			c := &chn{name: fmt.Sprintf("PJSIP/10%d-0000000%d", i, i), uid: uid, linked: uid, cid: "10" + fmt.Sprint(i), exten: "200", ctx: "from-internal", state: 4}
			evs = append(evs, feed(tr, clk, []*ami.Message{newchannel(c)})...)
		}
		ended := endedCount(evs)
		if ended["9.0"] != 1 || ended["9.1"] != 1 || len(ended) != 2 {
			t.Errorf("ended %v, want 9.0 and 9.1 evicted", ended)
		}
		if tr.Live() != 3 || len(tr.calls) != 3 {
			t.Errorf("Live %d, tracked %d, want 3", tr.Live(), len(tr.calls))
		}
		if bad := violations(evs); len(bad) > 0 {
			t.Errorf("invariants broken: %v", bad)
		}
	})
}

// Told late (after the call started), the hint still shapes later events;
// the events it causes come out of the next Handle.
func TestExpectOriginateLate(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	msgs := loadCapture(t, "03-originate-dial-bridge")
	var evs []protocol.Event
	for i, m := range msgs {
		clk.now = clk.now.Add(time.Millisecond)
		evs = append(evs, tr.Handle(m)...)
		if m.Event() == "Newchannel" && i < 10 {
			tr.ExpectOriginate("1795337002.0", "150", "+375296254070")
		}
	}
	if got, want := summary(evs), "started(originate 150→ queued) answered(+375296254070) bridged"; got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if evs[1].To != "+375296254070" {
		t.Errorf("answered to %q", evs[1].To)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero is fine", Config{}, ""},
		{"negative MaxCalls", Config{MaxCalls: -1}, "MaxCalls is -1"},
		{"negative TTL", Config{ExpectTTL: -time.Second}, "ExpectTTL is -1s"},
		{"several", Config{MaxLegsPerCall: -2, ExtensionMaxDigits: -3, MaxExpectations: -4}, "ExtensionMaxDigits is -3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// A supervisor's call on a PBX with real phones: the agent originates
// Local/151 into ChanSpy and the Local channel's dialplan dials the
// supervisor's phone before anything answers. The call is answered when
// that phone is, by 151.
func TestSupervisorPhoneBehindLocal(t *testing.T) {
	one := &chn{name: "Local/151@inoffice-00000001;1", uid: "9.1", linked: "9.1", exten: "151", ctx: "inoffice"}
	two := &chn{name: "Local/151@inoffice-00000001;2", uid: "9.2", linked: "9.1", exten: "151", ctx: "inoffice", state: 4}
	phone := &chn{name: "PJSIP/151-0000000a", uid: "9.3", linked: "9.1", exten: "s", ctx: "from-internal"}
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	tr.ExpectMonitor("9.1", "150")
	evs := feed(tr, clk, []*ami.Message{
		newchannel(one), newchannel(two), newchannel(phone), dialBegin(two, phone, "PJSIP/151"),
		newstate(phone, 5), dialState(two, phone, "RINGING"),
		newstate(phone, 6), dialEnd(two, phone, "ANSWER"), newstate(two, 6), newstate(one, 6),
		hangupRequest(phone, 16), hangup(phone, 16, "Normal Clearing"),
		hangup(two, 16, "Normal Clearing"), hangup(one, 16, "Normal Clearing"),
	})
	if bad := violations(evs); len(bad) > 0 {
		t.Fatalf("invariants broken: %v", bad)
	}
	if got, want := summary(evs), "started(originate 151→150 queued) ringing answered(151) ended(completed 16 by 151)"; got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}
