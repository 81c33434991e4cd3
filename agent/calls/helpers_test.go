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
