package calls

import (
	"math/rand/v2"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// floating are the events Asterisk publishes from other threads or
// subsystems than the channel's own (CEL and CDR engines, the originate
// thread, dialplan variable and device state updates): they may come
// before or after the channel events around them, but never before the
// channel they are about exists.
var floating = map[string]bool{
	"CEL": true, "Cdr": true, "OriginateResponse": true, "VarSet": true,
	"Newexten": true, "DeviceStateChange": true, "NewConnectedLine": true,
}

// reorder moves floating events up to window places either way and swaps
// neighbouring Hangups of different channels (their order across channels
// is not fixed), as a real Asterisk may deliver them.
func reorder(msgs []*ami.Message, rng *rand.Rand, window int) []*ami.Message {
	out := append([]*ami.Message(nil), msgs...)
	for _, i := range rng.Perm(len(out)) {
		m := msgs[i]
		if !floating[m.Event()] {
			continue
		}
		from := indexOf(out, m)
		out = append(out[:from], out[from+1:]...)
		lo := max(from-window, anchorOf(out, m, from)+1, 0)
		hi := min(from+window, len(out))
		to := lo
		if hi > lo {
			to = lo + rng.IntN(hi-lo+1)
		}
		out = append(out[:to], append([]*ami.Message{m}, out[to:]...)...)
	}
	for i := 0; i+1 < len(out); i++ {
		a, b := out[i], out[i+1]
		if a.Event() == "Hangup" && b.Event() == "Hangup" && a.Get("Uniqueid") != b.Get("Uniqueid") && rng.IntN(2) == 0 {
			out[i], out[i+1] = b, a
		}
	}
	return out
}

func indexOf(msgs []*ami.Message, m *ami.Message) int {
	for i, x := range msgs {
		if x == m {
			return i
		}
	}
	panic("message lost")
}

// anchorOf returns the index (in msgs, before position limit) of the
// Newchannel that m refers to, or -1.
func anchorOf(msgs []*ami.Message, m *ami.Message, limit int) int {
	uid := m.Get("Uniqueid")
	dial := ""
	if m.Event() == "OriginateResponse" && uid == "<unknown>" {
		dial = m.Get("Channel")
	}
	for i := min(limit, len(msgs)) - 1; i >= 0; i-- {
		x := msgs[i]
		if x.Event() != "Newchannel" {
			continue
		}
		if dial != "" && dialStringOf(x.Get("Channel")) == dial {
			return i
		}
		if dial == "" && x.Get("Uniqueid") == uid {
			return i
		}
	}
	return -1
}

func TestShuffledOrderSameLifecycle(t *testing.T) {
	queueSteps, _ := queueScenario()
	cases := []struct {
		name     string
		resync   string
		captures [][]*ami.Message
	}{
		{"04 failures", "", [][]*ami.Message{loadCapture(t, "04-originate-failures")}},
		{"07+08 monitor and hangups", "05-coreshowchannels", [][]*ami.Message{loadCapture(t, "07-chanspy"), loadCapture(t, "08-hangup")}},
		{"queue with transfer", "", [][]*ami.Message{messagesOf(queueSteps)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := func(msgs []*ami.Message) (map[string]string, int) {
				clk := newClock()
				tr := NewTracker(Config{Now: clk.Now})
				var evs []protocol.Event
				if tc.resync != "" {
					evs = tr.Resync(liveItems(t, tc.resync))
				}
				evs = append(evs, feed(tr, clk, msgs)...)
				if bad := violations(evs); len(bad) > 0 {
					t.Fatalf("invariants broken: %v", bad)
				}
				calls, _ := byCall(evs)
				out := map[string]string{}
				for id, e := range calls {
					out[id] = summary(e)
				}
				return out, tr.Live()
			}
			var all []*ami.Message
			for _, c := range tc.captures {
				all = append(all, c...)
			}
			want, wantLive := run(all)
			for seed := range uint64(60) {
				rng := rand.New(rand.NewPCG(seed, 7))
				got, live := run(reorder(all, rng, 12))
				for id, w := range want {
					if got[id] != w {
						t.Fatalf("seed %d, call %s:\n got %s\nwant %s", seed, id, got[id], w)
					}
				}
				if len(got) != len(want) || live != wantLive {
					t.Fatalf("seed %d: %d calls (want %d), Live %d (want %d)", seed, len(got), len(want), live, wantLive)
				}
			}
		})
	}
}
