package realpbx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// testResume: GET /v1/events pages resume exactly after= a sequence, and
// the WebSocket replays from after= with no gap or duplicate, says
// stream.live, then carries the events of a new call as they happen; a
// second connection resuming after the last sequence seen gets only what
// came later.
func testResume(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.waitEvent(tn, "call.bridged of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })
	all := l.events(tn, 0)
	if len(all) < 3 {
		l.t.Fatalf("only %d events stored", len(all))
	}
	for i, e := range all {
		if e.Seq != all[0].Seq+int64(i) {
			l.t.Fatalf("sequence has a hole or a duplicate at %d: %v", i, seqs(all))
		}
	}

	// Polling: small pages from the middle.
	mid := all[len(all)/2].Seq
	var got []Event
	for after := mid; ; {
		var p page
		code, body := l.do("GET", fmt.Sprintf("/v1/events?after=%d&limit=2", after), tn.key, nil)
		mustJSON(l.t, "GET /v1/events page", code, body, http.StatusOK, &p)
		got = append(got, p.Events...)
		if !p.HasMore {
			break
		}
		if p.NextAfter <= after {
			l.t.Fatalf("next_after %d does not move past %d", p.NextAfter, after)
		}
		after = p.NextAfter
	}
	if want := seqsAfter(all, mid); !slices.Equal(seqs(got), want) {
		l.t.Fatalf("polling after=%d gave %v, want %v", mid, seqs(got), want)
	}

	// WebSocket: replay from mid, then live.
	ws := l.dialEvents(tn, mid)
	replayed, live := ws.untilLive(l)
	if want := seqsAfter(all, mid); !slices.Equal(seqs(replayed), want) || live < all[len(all)-1].Seq {
		l.t.Fatalf("WebSocket after=%d replayed %v then live at %d, want %v", mid, seqs(replayed), live, want)
	}
	code, body := l.do("DELETE", "/v1/calls/"+id, tn.key, nil)
	mustJSON(l.t, "DELETE the call", code, body, http.StatusOK, nil)
	ended := ws.until(l, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	last := ended[len(ended)-1].Seq
	if ended[0].Seq != live+1 {
		l.t.Fatalf("first live event #%d, want #%d", ended[0].Seq, live+1)
	}
	ws.close()

	// Resume after the last event seen: a new call's events only.
	next := l.originate(tn, "151", "+375296254071")
	ws = l.dialEvents(tn, last)
	defer ws.close()
	replayed, _ = ws.untilLive(l)
	answered := func(e Event) bool { return e.CallID == next && e.Type == protocol.EventCallAnswered }
	var more []Event
	// Asterisk may answer before the stream is dialled: then the answer
	// is among the replayed events and nothing more is to come.
	if !slices.ContainsFunc(replayed, answered) {
		more = ws.until(l, answered)
	}
	for i, e := range append(replayed, more...) {
		if e.Seq != last+1+int64(i) || e.CallID != next {
			l.t.Fatalf("resume after=%d: got %v", last, append(replayed, more...))
		}
	}
}

func seqs(evs []Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func seqsAfter(evs []Event, after int64) []int64 {
	var out []int64
	for _, e := range evs {
		if e.Seq > after {
			out = append(out, e.Seq)
		}
	}
	return out
}

// eventStream is one GET /v1/events WebSocket.
type eventStream struct {
	c      *websocket.Conn
	cancel context.CancelFunc
	ctx    context.Context
}

func (l *lab) dialEvents(tn *tenant, after int64) *eventStream {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	u := "ws" + strings.TrimPrefix(l.base, "http") + fmt.Sprintf("/v1/events?after=%d", after)
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tn.key}}})
	if err != nil {
		cancel()
		l.t.Fatalf("event WebSocket: %v", err)
	}
	return &eventStream{c: c, cancel: cancel, ctx: ctx}
}

func (s *eventStream) close() {
	s.c.Close(websocket.StatusNormalClosure, "")
	s.cancel()
}

// next reads one message: an event, or a control message (ctl != "").
func (s *eventStream) next(l *lab) (e Event, ctl string, seq int64) {
	l.t.Helper()
	rctx, cancel := context.WithTimeout(s.ctx, waitShort)
	defer cancel()
	_, b, err := s.c.Read(rctx)
	if err != nil {
		l.t.Fatalf("read event WebSocket: %v", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		l.t.Fatalf("event %s: %v", b, err)
	}
	if strings.HasPrefix(e.Type, "stream.") {
		return Event{}, e.Type, e.Seq
	}
	return e, "", 0
}

// untilLive reads the replay up to stream.live.
func (s *eventStream) untilLive(l *lab) (replayed []Event, live int64) {
	l.t.Helper()
	for {
		e, ctl, seq := s.next(l)
		switch ctl {
		case "":
			replayed = append(replayed, e)
		case "stream.live":
			return replayed, seq
		default:
			l.t.Fatalf("unexpected %s", ctl)
		}
	}
}

// until reads events until ok accepts one, and returns them all.
func (s *eventStream) until(l *lab, ok func(Event) bool) []Event {
	l.t.Helper()
	var out []Event
	deadline := time.Now().Add(waitShort)
	for time.Now().Before(deadline) {
		e, ctl, _ := s.next(l)
		if ctl != "" {
			l.t.Fatalf("unexpected %s while live", ctl)
		}
		out = append(out, e)
		if ok(e) {
			return out
		}
	}
	l.t.Fatalf("event not seen; got %v", out)
	return nil
}
