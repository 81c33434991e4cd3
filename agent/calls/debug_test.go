package calls

import (
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func TestDebugDump(t *testing.T) {
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now})
	var items []*ami.Message
	for _, m := range loadCapture(t, "05-coreshowchannels") {
		if m.Event() == "CoreShowChannel" {
			items = append(items, m)
		}
	}
	evs := tr.Resync(items)
	evs = append(evs, feed(tr, clk, loadCapture(t, "07-chanspy"))...)
	evs = append(evs, feed(tr, clk, loadCapture(t, "08-hangup"))...)
	m, order := byCall(evs)
	for _, id := range order {
		t.Logf("%s: %s", id, summary(m[id]))
	}
	for _, e := range evs {
		if e.Type == "call.ended" {
			t.Logf("%+v", e)
		}
	}
	t.Logf("live %d", tr.Live())
}
