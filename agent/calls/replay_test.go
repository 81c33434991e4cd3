package calls

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// replayCase replays captured AMI sessions through one Tracker and checks
// the exact lifecycle of every call.
type replayCase struct {
	name     string
	resync   string   // capture whose CoreShowChannel items seed Resync first
	captures []string // replayed in order, as one continuous session
	setup    func(tr *Tracker)
	want     map[string]string // call id → summary()
	wantLive int
	check    func(t *testing.T, calls map[string][]protocol.Event)
}

func TestReplayCaptures(t *testing.T) {
	cases := []replayCase{
		{
			name:     "03 answered and bridged, originated by someone else",
			captures: []string{"03-originate-dial-bridge"},
			want: map[string]string{
				// The to is learnt from the Dial; Local/150 answering first is
				// the caller's own phone, not the call being answered.
				"1795337002.0": "started(originate 150→ queued) answered(+375296254070) bridged",
			},
			wantLive: 1,
			check: func(t *testing.T, calls map[string][]protocol.Event) {
				ans := calls["1795337002.0"][1]
				if ans.AnsweredChannel != "Local/+375296254070@inoffice-00000001;1" || ans.To != "+375296254070" || ans.Status != protocol.CallInProgress {
					t.Errorf("answered = %+v", ans)
				}
			},
		},
		{
			name:     "03 answered and bridged, placed through the API",
			captures: []string{"03-originate-dial-bridge"},
			setup: func(tr *Tracker) {
				tr.ExpectOriginate("1795337002.0", "150", "+375296254070")
			},
			want: map[string]string{
				"1795337002.0": "started(originate 150→+375296254070 queued) answered(+375296254070) bridged",
			},
			wantLive: 1,
		},
		{
			name:     "04 busy, no answer, congestion, no such extension, sync variants",
			captures: []string{"04-originate-failures"},
			want: map[string]string{
				"1795337006.4":  "started(originate busy→ queued) ended(busy 17)",                          // 4a
				"1795337007.6":  "started(originate noanswer→ queued) ringing ended(no-answer 19)",         // 4b
				"1795337012.8":  "started(originate congestion→ queued) ended(failed 34)",                  // 4c
				"1795337013.10": "started(originate nosuchexten→ queued) ended(failed 0)",                  // 4d
				"1795337017.12": "started(originate busy→ queued) ended(busy 17)",                          // 4f
				"1795337018.14": "started(originate noanswer→ queued) ringing ended(no-answer 19)",         // 4g
				"1795337023.16": "started(originate 152→ queued) answered(152) ended(completed 16 by 152)", // 4h
			},
			check: func(t *testing.T, calls map[string][]protocol.Event) {
				texts := map[string]string{
					"1795337006.4":  "User busy",
					"1795337007.6":  "User alerting, no answer",
					"1795337012.8":  "Circuit/channel congestion",
					"1795337013.10": "Unknown",
				}
				for id, want := range texts {
					evs := calls[id]
					if got := evs[len(evs)-1].CauseText; got != want {
						t.Errorf("%s cause text %q, want %q", id, got, want)
					}
				}
				// 4b: OriginateResponse Failure arrives before the Hangups,
				// so the call ends with the originated channel's Hangup, not
				// with its Local ";2" half that lingers after it. Message k
				// of the replay is handled at epoch + (k+1) ms.
				var endAt time.Time
				for k, m := range loadCapture(t, "04-originate-failures") {
					if m.Event() == "Hangup" && m.Get("Uniqueid") == "1795337007.6" {
						endAt = epoch.Add(time.Duration(k+1) * time.Millisecond)
					}
				}
				na := calls["1795337007.6"]
				if e := na[len(na)-1]; !e.EndedAt.Equal(endAt) || e.BillsecS != 0 {
					t.Errorf("no-answer ended at %v billsec %d, want at %v (Hangup of ;1) billsec 0", e.EndedAt, e.BillsecS, endAt)
				}
				// 4h was answered by the PBX dialplan at 152 and hung up later.
				ok := calls["1795337023.16"]
				if e := ok[len(ok)-1]; e.AnsweredBy != "152" || e.AnsweredAt == nil || e.BillsecS != 1 {
					t.Errorf("4h ended = %+v (billsec from its Cdr: 1)", e)
				}
			},
		},
		{
			name:     "07+08 monitored calls, hangup by name (8a) and by regex (8e), resynced from 05",
			resync:   "05-coreshowchannels",
			captures: []string{"07-chanspy", "08-hangup"},
			want: map[string]string{
				// Set up before the captures: known from CoreShowChannels.
				"1795337025.18": "started(originate 150→+375296254070 queued) answered(+375296254070) bridged " +
					"monitor_started(151) monitor_started(152) monitor_started(153) monitor_started(154) monitor_started(155) " +
					"monitor_stopped(155) monitor_stopped(151) monitor_stopped(152) monitor_stopped(153) monitor_stopped(154) " +
					"ended(completed 16 by 150)",
				// The supervisors' ChanSpy calls: the originated phone is the far end.
				"1795337031.22": "started(originate 151→ queued) answered(151) ended(completed 16 by 151)",
				"1795337032.24": "started(originate 152→ queued) answered(152) ended(completed 16 by 152)",
				"1795337034.26": "started(originate 153→ queued) answered(153) ended(completed 16 by 153)",
				"1795337036.28": "started(originate 154→ queued) answered(154) ended(completed 16 by 154)",
				"1795337037.30": "started(originate 155→ queued) answered(155) ended(completed 16 by 155)",
				"1795337039.32": "started(originate 156→ queued) answered(156) ended(completed 16 by 156)",
				// 8d/8e: ChanSpy re-attaches to the next call on the prefix.
				"1795337048.34": "started(originate 150→ queued) answered(+375296254070) bridged " +
					"monitor_started(151) monitor_started(152) monitor_started(153) " +
					"monitor_stopped(153) monitor_stopped(151) monitor_stopped(152) ended(completed 16 by 150)",
				"1795337056.38": "started(originate 150→ queued) answered(+375296254070) bridged ended(completed 16 by 150)",
			},
			check: func(t *testing.T, calls map[string][]protocol.Event) {
				a := calls["1795337025.18"]
				if e := a[len(a)-1]; e.BillsecS != 19 || e.Cause != 16 || e.CauseText != "Normal Clearing" {
					t.Errorf("8a ended = %+v, want billsec 19 (Cdr), Normal Clearing", e)
				}
				for _, e := range a {
					if e.Type == protocol.EventMonitorStarted && e.TargetChannel != "Local/150@inoffice-00000009;1" {
						t.Errorf("monitor target %q", e.TargetChannel)
					}
				}
			},
		},
		{
			name:     "08 alone: calls begun before the tracker are ignored, new ones tracked",
			captures: []string{"08-hangup"},
			want: map[string]string{
				"1795337048.34": "started(originate 150→ queued) answered(+375296254070) bridged " +
					"monitor_started(151) monitor_started(152) monitor_started(153) " +
					"monitor_stopped(153) monitor_stopped(151) monitor_stopped(152) ended(completed 16 by 150)",
				"1795337056.38": "started(originate 150→ queued) answered(+375296254070) bridged ended(completed 16 by 150)",
			},
		},
		{
			// The agent's originates (18d-g) end with every channel of
			// 150 hanging up with Cause 0: the busy, congestion and
			// cancel come from the DialEnd of the number dialled.
			name:     "18 the numeric test lines, directly and dialled from 150 through the API",
			captures: []string{"18-originate-test-lines"},
			setup: func(tr *Tracker) {
				tr.ExpectOriginate("sb-capture-18d", "150", "5550001")
				tr.ExpectOriginate("sb-capture-18e", "150", "5550002")
				tr.ExpectOriginate("sb-capture-18f", "150", "5550000")
			},
			want: map[string]string{
				"1796535404.0":   "started(originate 5550001→ queued) ended(busy 17)",
				"1796535406.2":   "started(originate 5550000→ queued) ringing ended(no-answer 19)",
				"1796535411.4":   "started(originate 5550002→ queued) ended(failed 34)",
				"sb-capture-18d": "started(originate 150→5550001 queued) ended(busy 17)",
				"sb-capture-18e": "started(originate 150→5550002 queued) ended(failed 34)",
				"sb-capture-18f": "started(originate 150→5550000 queued) ringing ended(canceled 16 by 150)",
			},
		},
		{
			name:     "19 a supervisor hung up while listening leaves with the call",
			captures: []string{"19-chanspy-hangup"},
			setup: func(tr *Tracker) {
				tr.ExpectOriginate("sb-capture-19a", "150", "+375296254070")
				tr.ExpectMonitor("sb-capture-19b", "150")
			},
			// The Hangup of the supervisor (19c) changes nothing; the
			// monitor stops and the supervisor's call ends with the call.
			want: map[string]string{
				"sb-capture-19a": "started(originate 150→+375296254070 queued) answered(+375296254070) bridged " +
					"monitor_started(151) monitor_stopped(151) ended(completed 16 by 150)",
				"sb-capture-19b": "started(originate 151→150 queued) answered(151) ended(completed 16 by 151)",
			},
		},
		{
			// A caller put into queue inbound the way a CRM or the lab
			// does (Originate Local/inbound@queues, Application Wait): the
			// queue's Answer() is the PBX's, not a person's; the call is
			// answered by the operator the queue connects (ringall: both
			// operators' Local ";2" halves may go Up, only the queue's
			// DialEnd ANSWER tells), from the caller id it rings them with.
			// 14d: the caller gives up while the operators ring.
			name:     "14b/c/d queue calls: the operator who took it",
			captures: []string{"14b-queue-call-ringall", "14c-queue-call-noanswer", "14d-queue-call-abandon"},
			want: map[string]string{
				"1796529714.66": "started(originate inbound→ queued) queue.caller_joined ringing answered(102) queue.caller_left bridged ended(completed 16 by 102)",
				"1796529722.72": "started(originate inbound→ queued) queue.caller_joined ringing answered(101) queue.caller_left bridged ended(completed 16 by 101)",
				"1796529732.78": "started(originate inbound→ queued) queue.caller_joined ringing answered(101) queue.caller_left bridged ended(completed 16 by +375296254070)",
				"1796529747.86": "started(originate inbound→ queued) queue.caller_joined ringing queue.caller_left ended(canceled 16 by +375296254070)",
			},
			check: func(t *testing.T, calls map[string][]protocol.Event) {
				// answered_by is the operator Asterisk's AgentConnect names.
				want := map[string]string{}
				for _, name := range []string{"14b-queue-call-ringall", "14c-queue-call-noanswer"} {
					for _, m := range loadCapture(t, name) {
						if m.Event() == "AgentConnect" {
							want[m.Get("Linkedid")] = strings.TrimPrefix(m.Get("MemberName"), "Operator ")
						}
					}
				}
				if len(want) != 3 {
					t.Fatalf("AgentConnect for %d calls, want 3", len(want))
				}
				for id, op := range want {
					for _, e := range calls[id] {
						if e.Type == protocol.EventCallAnswered && (e.AnsweredBy != op || e.From != "+375296254070" || e.To != "inbound") {
							t.Errorf("call %s answered by %q from %q to %q, want %s from +375296254070 to inbound", id, e.AnsweredBy, e.From, e.To, op)
						}
					}
				}
			},
		},
		{
			name:     "monitor placed through the API",
			resync:   "05-coreshowchannels",
			captures: []string{"07-chanspy"},
			setup: func(tr *Tracker) {
				tr.ExpectMonitor("1795337031.22", "150")
			},
			want: map[string]string{
				"1795337025.18": "started(originate 150→+375296254070 queued) answered(+375296254070) bridged " +
					"monitor_started(151) monitor_started(152) monitor_started(153) monitor_started(154) monitor_started(155)",
				"1795337031.22": "started(originate 151→150 queued) answered(151)",
				"1795337032.24": "started(originate 152→ queued) answered(152)",
				"1795337034.26": "started(originate 153→ queued) answered(153)",
				"1795337036.28": "started(originate 154→ queued) answered(154)",
				"1795337037.30": "started(originate 155→ queued) answered(155)",
				"1795337039.32": "started(originate 156→ queued) answered(156)",
			},
			wantLive: 7,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			tr := NewTracker(Config{Now: clk.Now})
			if tc.setup != nil {
				tc.setup(tr)
			}
			var evs []protocol.Event
			if tc.resync != "" {
				evs = append(evs, tr.Resync(liveItems(t, tc.resync))...)
			}
			for _, c := range tc.captures {
				evs = append(evs, feed(tr, clk, loadCapture(t, c))...)
			}
			if bad := violations(evs); len(bad) > 0 {
				t.Fatalf("invariants broken:\n%v", bad)
			}
			calls, order := byCall(evs)
			for id, want := range tc.want {
				if got := summary(calls[id]); got != want {
					t.Errorf("call %s:\n got %s\nwant %s", id, got, want)
				}
			}
			for _, id := range order {
				if _, ok := tc.want[id]; !ok {
					t.Errorf("unexpected call %s: %s", id, summary(calls[id]))
				}
			}
			if got := tr.Live(); got != tc.wantLive {
				t.Errorf("Live() = %d, want %d", got, tc.wantLive)
			}
			if tc.check != nil {
				tc.check(t, calls)
			}
		})
	}
}

// Times come from the Timestamp header when Asterisk sends one
// (timestampevents=yes), so a lagging reader does not skew durations.
func TestTimestampHeaderWins(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	msgs := loadCapture(t, "04-originate-failures")
	base := time.Date(2026, 11, 22, 8, 43, 26, 0, time.UTC)
	var evs []protocol.Event
	for i, m := range msgs {
		m = m.Clone()
		m.Add("Timestamp", formatTimestamp(base.Add(time.Duration(i)*100*time.Millisecond)))
		evs = append(evs, tr.Handle(m)...)
	}
	if len(evs) == 0 || !evs[0].Time.After(base) || evs[0].Time.Sub(base) > time.Hour {
		t.Fatalf("first event at %v, want from the Timestamp header near %v", evs[0].Time, base)
	}
	for _, e := range evs {
		if e.Time.Before(base) {
			t.Fatalf("%s at %v: fake clock used instead of Timestamp", e.Type, e.Time)
		}
	}
}

func formatTimestamp(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

// TestDialFailureBeforeItsLegIsGone: when a Dial returns busy or
// congestion, Asterisk hangs up the dialling channel while the Local
// channels of the number dialled are still being torn down, and the order
// of those events varies from run to run (seen on the real Asterisk:
// capture 18 has one order, a run under load the other). The caller
// hanging up after its Dial has failed is not a cancel: the call ends busy
// (or failed) either way.
func TestDialFailureBeforeItsLegIsGone(t *testing.T) {
	for _, tc := range []struct{ id, dest, want string }{
		{"sb-capture-18d", "Local/5550001@", "started(originate 150→ queued) ended(busy 17)"},
		{"sb-capture-18e", "Local/5550002@", "started(originate 150→ queued) ended(failed 34)"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			msgs := loadCapture(t, "18-originate-test-lines")
			end, req := -1, -1
			for i, m := range msgs {
				switch {
				case m.Event() == "DialEnd" && m.Get("Linkedid") == tc.id && strings.HasPrefix(m.Get("DestChannel"), tc.dest):
					end = i
				case m.Event() == "HangupRequest" && m.Get("Linkedid") == tc.id && strings.HasPrefix(m.Get("Channel"), "Local/150@"):
					req = i
				}
			}
			if end < 0 || req < end {
				t.Fatalf("capture: DialEnd at %d, the caller's HangupRequest at %d", end, req)
			}
			// The caller's HangupRequest right after the DialEnd, before any
			// Hangup of the number dialled.
			moved := append(append(append([]*ami.Message{}, msgs[:end+1]...), msgs[req]), msgs[end+1:req]...)
			moved = append(moved, msgs[req+1:]...)
			clk := newClock()
			tr := NewTracker(Config{Now: clk.Now})
			calls, _ := byCall(feed(tr, clk, moved))
			if got := summary(calls[tc.id]); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
