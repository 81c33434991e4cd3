package agent_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// callOf returns the stored events of one call, by call id.
func (cp *controlPlane) callOf(callID string) []protocol.Event {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []protocol.Event
	for seq := uint64(1); seq <= cp.lastAcked; seq++ {
		if ev, ok := cp.stored[seq]; ok && ev.CallID == callID {
			out = append(out, ev)
		}
	}
	return out
}

func (cp *controlPlane) endedStored(callID string) bool {
	for _, ev := range cp.callOf(callID) {
		if ev.Type == protocol.EventCallEnded {
			return true
		}
	}
	return false
}

// TestHugeCallerExtension replays the review's attack: a PBX whose caller
// extension is 200 KB. Before, every event of the call carried it whole,
// the batch (1.4 MB) was over the control plane's 1 MiB frame limit, and
// the same batch was refused after every reconnect: no event of that PBX
// was stored again. Now the fields are cut at the agent and marked, the
// call's events are stored, and the session never drops.
func TestHugeCallerExtension(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	a := runAgent(t, cp, srv.Addr(), logs, nil)
	waitAction(t, srv, "CoreShowChannels")
	eventually(t, "a session", func() bool { return cp.session() != nil })

	huge := strings.Repeat("7", 200<<10)
	id, err := srv.StartCall(huge, "150")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the call to be answered", func() bool { _, ok := a.Channels().LiveForExtension("150"); return ok })
	if err := srv.Hangup(id, 16); err != nil {
		t.Fatal(err)
	}
	eventually(t, "call.ended of the call to be stored", func() bool { return cp.endedStored(id) })
	evs := cp.callOf(id)
	for _, ev := range evs {
		if len(ev.From) > agent.DefaultMaxEventFieldBytes || len(ev.Channel) > agent.DefaultMaxEventFieldBytes {
			t.Fatalf("%s: from %d bytes, channel %d bytes", ev.Type, len(ev.From), len(ev.Channel))
		}
		if !slices.Contains(ev.Truncated, "from") || !strings.HasPrefix(huge, ev.From) {
			t.Fatalf("%s: truncated %v, from %.20q…", ev.Type, ev.Truncated, ev.From)
		}
	}
	if n := cp.sessionCount(); n != 1 {
		t.Fatalf("%d sessions: the tunnel dropped", n)
	}
	if st := a.OutboxStats(); st.Truncated < uint64(len(evs)) {
		t.Fatalf("outbox counted %d truncated events, %d were stored", st.Truncated, len(evs))
	}
	_ = cp.storedInOrder(t) // no hole
}

// TestRefusedFrameResent: a control plane whose frame limit is below the
// agent's batch refuses a frame; the agent resends the same events in
// smaller frames on the same session, and replaces the one event that
// cannot fit the control plane's limit by a gap event naming it. Nothing
// is lost silently, nothing is stored twice, and there is no reconnect.
func TestRefusedFrameResent(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	cp.maxFrame = 8 << 10
	cp.setDown(true) // events pile up first, so they go out in one big batch
	a := runAgent(t, cp, srv.Addr(), logs, func(c *agent.Config) { c.MaxEventFieldBytes = 32 << 10 })
	waitAction(t, srv, "CoreShowChannels")

	mid := strings.Repeat("5", 1500) // events of about 3 KB: two fit 8 KiB
	big := strings.Repeat("6", 5000) // events of about 10 KB: none fits
	midID, err := srv.StartCall(mid, "150")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first call to be answered", func() bool { _, ok := a.Channels().LiveForExtension("150"); return ok })
	bigID, err := srv.StartCall(big, "151")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second call to be answered", func() bool { _, ok := a.Channels().LiveForExtension("151"); return ok })
	for _, id := range []string{midID, bigID} {
		if err := srv.Hangup(id, 16); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "events to pile up", func() bool { return a.Outbox().Len() >= 8 })
	pending := a.Outbox().Len()

	cp.setDown(false)
	eventually(t, "every event acknowledged", func() bool { return a.Outbox().Len() == 0 })
	all := cp.storedInOrder(t)
	if len(all) != pending {
		t.Fatalf("stored %d events, %d were pending", len(all), pending)
	}
	var gaps, midEvents int
	for _, ev := range all {
		switch {
		case ev.Type == protocol.EventGap:
			if ev.Lost != 1 || ev.CallID != bigID || !strings.HasPrefix(ev.Dropped, "call.") || !strings.Contains(ev.Reason, "bytes is over") {
				t.Fatalf("gap event %+v", ev)
			}
			gaps++
		case ev.CallID == midID:
			midEvents++
			if ev.From != mid {
				t.Fatalf("%s of the first call lost its caller", ev.Type)
			}
		case ev.CallID == bigID:
			t.Fatalf("%s of %d bytes got through an 8 KiB limit", ev.Type, len(ev.From))
		}
	}
	if gaps == 0 || midEvents == 0 {
		t.Fatalf("gaps %d, events of the first call %d: %v", gaps, midEvents, types(all))
	}
	if n := cp.sessionCount(); n != 1 {
		t.Fatalf("%d sessions: a refused frame made the agent reconnect", n)
	}
	cp.mu.Lock()
	refusals := cp.refusals
	cp.mu.Unlock()
	if st := a.StreamStats(); refusals == 0 || st.FramesRefused != uint64(refusals) {
		t.Fatalf("control plane refused %d frames, agent counted %d", refusals, st.FramesRefused)
	}
	if st := a.OutboxStats(); st.TooLarge != uint64(gaps) {
		t.Fatalf("outbox counted %d too-large events, %d gaps stored", st.TooLarge, gaps)
	}
}

// TestInFlightBound: a control plane that holds back its acks (rate limit,
// failing store) gets at most MaxInFlightBytes of unacknowledged frames;
// the agent waits on the same session and sends the rest once acks come.
func TestInFlightBound(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	const inFlight = 16 << 10
	a := runAgent(t, cp, srv.Addr(), logs, func(c *agent.Config) {
		c.MaxBatchBytes, c.MaxInFlightBytes, c.MaxEventsPerBatch = 4<<10, inFlight, 2
	})
	waitAction(t, srv, "CoreShowChannels")
	eventually(t, "a session", func() bool { return cp.session() != nil })
	cp.setAck(false)
	pad := strings.Repeat("4", 400)
	for i := range 30 {
		if _, err := srv.StartCall(pad+string(rune('0'+i%10)), "150"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the agent to wait for acks", func() bool { return a.StreamStats().AckWaits > 0 })
	cp.mu.Lock()
	var bytes int
	for _, ev := range cp.received {
		bytes += len(ev.From) + len(ev.Channel)
	}
	cp.mu.Unlock()
	if bytes > inFlight {
		t.Fatalf("%d bytes of caller ids and channels unacknowledged, over the %d-byte bound", bytes, inFlight)
	}
	if a.Outbox().Len() == 0 {
		t.Fatal("nothing held back")
	}
	cp.release()
	eventually(t, "everything acknowledged", func() bool { return a.Outbox().Len() == 0 })
	_ = cp.storedInOrder(t)
	if n := cp.sessionCount(); n != 1 {
		t.Fatalf("%d sessions: waiting for acks dropped the tunnel", n)
	}
}
