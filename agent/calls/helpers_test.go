package calls

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

const transcripts = "../../protocol/ami/testdata/transcripts"

// loadCapture parses every message Asterisk sent in a captured session.
func loadCapture(t testing.TB, name string) []*ami.Message {
	t.Helper()
	f, err := os.Open(filepath.Join(transcripts, name+".recv.raw"))
	if err != nil {
		t.Fatalf("open capture: %v", err)
	}
	defer f.Close()
	r := ami.NewReader(f)
	if _, err := r.ReadBanner(); err != nil {
		t.Fatalf("banner of %s: %v", name, err)
	}
	var out []*ami.Message
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if len(m.Headers) > 0 {
			out = append(out, m)
		}
	}
}

// clock is a fake time source: every message handled moves it by step.
type clock struct {
	now  time.Time
	step time.Duration
}

var epoch = time.Date(2026, 11, 22, 8, 43, 0, 0, time.UTC)

func newClock() *clock { return &clock{now: epoch, step: time.Millisecond} }

func (c *clock) Now() time.Time { return c.now }

// feed runs msgs through tr, advancing clk before each message.
func feed(tr *Tracker, clk *clock, msgs []*ami.Message) []protocol.Event {
	var out []protocol.Event
	for _, m := range msgs {
		clk.now = clk.now.Add(clk.step)
		out = append(out, tr.Handle(m)...)
	}
	return out
}

// byCall groups events by call id, keeping order.
func byCall(evs []protocol.Event) (map[string][]protocol.Event, []string) {
	m := map[string][]protocol.Event{}
	var order []string
	for _, e := range evs {
		if e.CallID == "" && strings.HasPrefix(e.Type, "queue.member_") {
			continue // about a queue, not a call
		}
		if _, ok := m[e.CallID]; !ok {
			order = append(order, e.CallID)
		}
		m[e.CallID] = append(m[e.CallID], e)
	}
	return m, order
}

// summary renders a call's lifecycle compactly for assertions, e.g.
// "started(originate 150→ queued) answered(+375296254070) ended(completed 16)".
func summary(evs []protocol.Event) string {
	var b []string
	for _, e := range evs {
		short := strings.TrimPrefix(e.Type, "call.")
		switch e.Type {
		case protocol.EventCallStarted:
			b = append(b, fmt.Sprintf("%s(%s %s→%s %s)", short, e.Direction, e.From, e.To, e.Status))
		case protocol.EventCallAnswered:
			b = append(b, fmt.Sprintf("%s(%s)", short, e.AnsweredBy))
		case protocol.EventMonitorStarted, protocol.EventMonitorStopped:
			b = append(b, fmt.Sprintf("%s(%s)", short, extOf(e.SpyChannel)))
		case protocol.EventCallEnded:
			s := fmt.Sprintf("%s(%s %d", short, e.Status, e.Cause)
			if e.HungupBy != "" {
				s += " by " + e.HungupBy
			}
			b = append(b, s+")")
		default:
			b = append(b, short)
		}
	}
	return strings.Join(b, " ")
}

var lifecycleRank = map[string]int{
	protocol.EventCallStarted:  1,
	protocol.EventCallRinging:  2,
	protocol.EventCallAnswered: 3,
	protocol.EventCallBridged:  4,
	protocol.EventCallEnded:    5,
}

var statuses = map[string]bool{
	protocol.CallQueued: true, protocol.CallRinging: true, protocol.CallInProgress: true,
	protocol.CallCompleted: true, protocol.CallBusy: true, protocol.CallFailed: true,
	protocol.CallNoAnswer: true, protocol.CallCanceled: true,
}

// violations checks the promises of the package over an event stream:
// per call, started first, each lifecycle event at most once and in causal
// order, nothing after ended, monitor events paired and inside the call.
func violations(evs []protocol.Event) []string { return checkEvents(evs, nil) }

// checkEvents is violations, except that a call id whose call.ended
// satisfies restart may start again: a call the tracker forgot (evicted)
// can be adopted again by Resync, and arbitrary input may reuse uniqueids.
func checkEvents(evs []protocol.Event, restart func(ended protocol.Event) bool) []string {
	var bad []string
	lastEnded := map[string]protocol.Event{}
	rank := map[string]int{}
	spies := map[string]map[string]bool{}
	for i, e := range evs {
		at := fmt.Sprintf("event %d (%s %s)", i, e.Type, e.CallID)
		if e.Seq != 0 {
			bad = append(bad, at+": Seq set")
		}
		if bad = checkQueueRecording(e, at, rank, bad); isQueueRecording(e.Type) {
			continue
		}
		if e.CallID == "" {
			bad = append(bad, at+": no call id")
		}
		if !statuses[e.Status] {
			bad = append(bad, at+": status "+e.Status)
		}
		cur := rank[e.CallID]
		if restart != nil && cur == lifecycleRank[protocol.EventCallEnded] && e.Type == protocol.EventCallStarted && restart(lastEnded[e.CallID]) {
			cur = 0
		}
		if cur == lifecycleRank[protocol.EventCallEnded] {
			bad = append(bad, at+": after call.ended")
			continue
		}
		if r, ok := lifecycleRank[e.Type]; ok {
			if cur == 0 && r != 1 {
				bad = append(bad, at+": before call.started")
			}
			if r <= cur {
				bad = append(bad, fmt.Sprintf("%s: out of order or repeated (after rank %d)", at, cur))
			}
			rank[e.CallID] = r
			if e.Type == protocol.EventCallEnded {
				lastEnded[e.CallID] = e
				if e.EndedAt == nil {
					bad = append(bad, at+": no ended_at")
				}
				if len(spies[e.CallID]) > 0 {
					bad = append(bad, at+": ended with a monitor still running")
				}
				if e.Status == protocol.CallCompleted && e.AnsweredAt == nil && e.AnsweredBy != "" {
					bad = append(bad, at+": answered_by without answered_at")
				}
			}
			continue
		}
		if cur == 0 {
			bad = append(bad, at+": before call.started")
		}
		if spies[e.CallID] == nil {
			spies[e.CallID] = map[string]bool{}
		}
		switch e.Type {
		case protocol.EventMonitorStarted:
			if spies[e.CallID][e.SpyChannel] {
				bad = append(bad, at+": monitor started twice")
			}
			spies[e.CallID][e.SpyChannel] = true
		case protocol.EventMonitorStopped:
			if !spies[e.CallID][e.SpyChannel] {
				bad = append(bad, at+": monitor stopped without start")
			}
			delete(spies[e.CallID], e.SpyChannel)
		default:
			bad = append(bad, at+": unknown type")
		}
	}
	return bad
}

// endedCount counts call.ended per call id.
func endedCount(evs []protocol.Event) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		if e.Type == protocol.EventCallEnded {
			n[e.CallID]++
		}
	}
	return n
}

// liveItems returns the CoreShowChannel items of a capture.
func liveItems(t testing.TB, name string) []*ami.Message {
	var out []*ami.Message
	for _, m := range loadCapture(t, name) {
		if m.Event() == "CoreShowChannel" {
			out = append(out, m)
		}
	}
	return out
}
