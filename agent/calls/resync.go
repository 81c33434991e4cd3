package calls

import (
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// expectation is a hint from the agent about a call it is placing.
type expectation struct {
	id       string
	from, to string
	monitor  string // ChanSpy target, for a monitor call
	single   bool   // the originated channel is the far end (not a Dial)
	at       time.Time
}

// ExpectOriginate tells the tracker that the agent is originating callID
// (the AMI ChannelId) from extension from to number to, as
// Originate Local/<from>@<context> → Dial(Local/<to>@<context>). Call it
// before sending the action: the call is then reported as direction
// originate with these from/to, and only the far end's ringing and answer
// count (the agent's own phone ringing first is not the call ringing).
func (t *Tracker) ExpectOriginate(callID, from, to string) {
	t.expect(&expectation{id: callID, from: from, to: to})
}

// ExpectMonitor tells the tracker that spyCallID is a supervisor's ChanSpy
// call on target: its first leg is the far end (answered when the
// supervisor picks up) and its To is the target.
func (t *Tracker) ExpectMonitor(spyCallID, target string) {
	t.expect(&expectation{id: spyCallID, monitor: target})
}

// apiHangupWindow is how long after ExpectHangup the call's end is taken
// as that hangup's doing: the Hangup action's effect follows in
// milliseconds; a call that ends later ended otherwise (the action
// failed, or the channel was already going).
const apiHangupWindow = 10 * time.Second

// ExpectHangup tells the tracker that the agent is about to hang up the
// channel uniqueid at the request of by (an API credential's public id or
// an operator). If that ends its call, call.ended names by in hungup_by,
// with status completed (answered) or canceled (not yet): the call was
// ended on purpose, not failed, whatever cause Asterisk gives the legs.
func (t *Tracker) ExpectHangup(uniqueid, by string) {
	ch := t.chans[uniqueid]
	if ch == nil || by == "" || ch.leg.call.ended {
		return
	}
	c := ch.leg.call
	c.apiHangupBy, c.apiHangupAt = by, t.cfg.Now()
}

func (t *Tracker) expect(e *expectation) {
	if e.id == "" {
		return
	}
	if c := t.calls[e.id]; c != nil {
		// Told late: the call already started. Events this causes are
		// returned by the next Handle or Resync.
		if !c.ended {
			t.applyExpectation(c, e)
		}
		return
	}
	now := t.cfg.Now()
	e.at = now
	t.purgeExpectations(now)
	for len(t.expects) >= t.cfg.MaxExpectations && len(t.expectQ) > 0 {
		old := t.expectQ[0]
		t.expectQ = t.expectQ[1:]
		if t.expects[old.id] == old {
			delete(t.expects, old.id)
		}
	}
	t.expects[e.id] = e
	t.expectQ = append(t.expectQ, e)
}

func (t *Tracker) purgeExpectations(now time.Time) {
	for len(t.expectQ) > 0 {
		e := t.expectQ[0]
		if t.expects[e.id] == e && now.Sub(e.at) <= t.cfg.ExpectTTL {
			return
		}
		t.expectQ = t.expectQ[1:]
		if t.expects[e.id] == e {
			delete(t.expects, e.id)
		}
	}
}

func (t *Tracker) takeExpectation(id string, now time.Time) *expectation {
	e := t.expects[id]
	if e == nil {
		return nil
	}
	delete(t.expects, id)
	if now.Sub(e.at) > t.cfg.ExpectTTL {
		return nil
	}
	return e
}

func (t *Tracker) applyExpectation(c *call, e *expectation) {
	c.originate = true
	c.direction = DirectionOriginate
	if e.from != "" {
		c.from = e.from
	}
	switch {
	case e.monitor != "" || e.single:
		if e.monitor != "" {
			c.to = e.monitor
		}
		t.resolve(c, stageSingle)
	case e.to != "":
		c.to = e.to
		t.resolve(c, stageTwo)
	}
}

// Reset is called when the AMI connection drops or is re-established.
// Calls are kept — events of calls still in progress continue after the
// reconnect — but marked unsynced, and bridge membership (not replayed by
// Asterisk) is forgotten. Resync then ends the calls that vanished during
// the outage.
func (t *Tracker) Reset() {
	for _, c := range t.calls {
		if !c.ended {
			c.unsynced = true
		}
		for _, l := range c.legs {
			l.bridges = nil
		}
	}
	clear(t.bridges)
}

// Resync reconciles the tracker with the channels Asterisk reports live
// (the CoreShowChannel items of a CoreShowChannels list, typically right
// after a reconnect). It returns the events this causes, Seq left 0:
//   - a tracked call none of whose channels is live gets a best-effort
//     call.ended: status from what was seen (completed if answered),
//     cause 0 "unknown (AMI reconnect)";
//   - live channels of calls the tracker never saw (agent restarted, or
//     calls set up during the outage) become tracked calls: call.started,
//     then call.answered / call.bridged as far as their state shows;
//   - a tracked call that moved on (answered, bridged) during the outage
//     gets the events it missed.
//
// Callers that ignore the result lose those events; the result was added
// to the agreed signature for that reason.
func (t *Tracker) Resync(live []*ami.Message) []protocol.Event {
	now := t.cfg.Now()
	t.clockNow = now
	byUID := make(map[string]*ami.Message, len(live))
	liveCalls := make(map[string]bool, len(live)) // linkedids with a live channel
	var order []string
	for _, m := range live {
		if m == nil {
			continue
		}
		uid := m.Get("Uniqueid")
		if uid == "" || byUID[uid] != nil {
			continue
		}
		byUID[uid] = m
		order = append(order, uid)
		if linked := m.Get("Linkedid"); linked != "" {
			liveCalls[linked] = true
		}
	}

	// Recordings and queue callers of channels gone meanwhile end first,
	// before their calls do.
	t.resyncRecordings(byUID)
	// Tracked calls first, oldest first, so the result is deterministic.
	for _, c := range t.created {
		if c.dropped || c.ended {
			continue
		}
		for _, l := range c.legs {
			for _, ch := range l.chans {
				if !ch.gone && byUID[ch.uid] == nil {
					ch.gone = true
					if l.gone() {
						l.goneAt = now
					}
				}
			}
		}
		// A live channel the tracker did not follow (over MaxLegsPerCall)
		// still keeps its call alive.
		if t.anyAlive(c) || liveCalls[c.id] {
			continue
		}
		t.finish(c, endReconnect)
	}

	// Then every live channel, tracked or not, in the order listed.
	for _, uid := range order {
		m := byUID[uid]
		linked := m.Get("Linkedid")
		if linked == "" {
			linked = uid
		}
		if ch := t.chans[uid]; ch != nil {
			if linked != ch.leg.call.id {
				t.moveLeg(ch.leg, linked)
			}
			continue
		}
		t.adopt(m, uid, linked, byUID, now)
	}
	for _, uid := range order {
		m := byUID[uid]
		ch := t.chans[uid]
		if ch == nil || ch.leg.call.ended {
			continue
		}
		state := atoi(m.Get("ChannelState"))
		if state == stateUp && !ch.leg.up {
			at := now.Add(-parseHMS(m.Get("Duration")))
			t.up(ch.leg, at)
		} else if state == stateRingingRemote {
			t.ringing(ch.leg)
		}
	}
	for _, uid := range order {
		if ch := t.chans[uid]; ch != nil {
			if bid := byUID[uid].Get("BridgeId"); bid != "" {
				t.enterBridge(ch.leg, bid)
			}
		}
	}
	for _, c := range t.calls {
		c.unsynced = false
	}
	t.evict()
	out := t.out
	t.out = nil
	return t.bound(out)
}

func (t *Tracker) anyAlive(c *call) bool {
	for _, l := range c.legs {
		if !l.gone() {
			return true
		}
	}
	return false
}

// adopt starts tracking a live channel the tracker has no record of. The
// call's first leg is the channel whose uniqueid is the linkedid when it
// is still there, else the first listed channel of that linkedid.
func (t *Tracker) adopt(m *ami.Message, uid, linked string, byUID map[string]*ami.Message, now time.Time) {
	c := t.calls[linked]
	if c != nil {
		if !c.ended {
			t.attach(c, uid, m.Get("Channel"), now)
		}
		return
	}
	if uid != linked {
		if fm := byUID[linked]; fm != nil {
			// The first leg is listed later: adopt it now so it is first.
			t.adopt(fm, linked, linked, byUID, now)
			if c = t.calls[linked]; c != nil && !c.ended {
				t.attach(c, uid, m.Get("Channel"), now)
			}
			return
		}
	}
	name := m.Get("Channel")
	start := now.Add(-parseHMS(m.Get("Duration")))
	c = t.newCall(linked, start)
	l := t.attach(c, uid, name, start)
	// A Local channel is only ever a call's first leg when something
	// originated it; any other first leg was a caller.
	state := stateRing
	var hint *expectation
	if _, _, local := localBase(name); local {
		state = stateDown
		c.app = m.Get("Application") // as its OriginateResponse would have said
		switch app := c.app; {
		case strings.EqualFold(app, "Dial"):
			hint = &expectation{to: dialTarget(m.Get("ApplicationData"))}
		case app != "" && !strings.HasPrefix(app, "AppDial"):
			hint = &expectation{single: true} // the originated channel is the far end
		}
	}
	t.startCall(c, l, state, knownValue(m.Get("CallerIDNum")), m.Get("Exten"), start, hint)
}

// evict keeps at most MaxCalls calls: the oldest ended ones go first; if
// every tracked call is live, the oldest live one is ended (best effort)
// and dropped.
func (t *Tracker) evict() {
	if len(t.created) > 2*t.cfg.MaxCalls+64 {
		// Ended calls leave created only when evicted through endedQ.
		kept := t.created[:0]
		for _, c := range t.created {
			if !c.dropped && !c.ended {
				kept = append(kept, c)
			}
		}
		clear(t.created[len(kept):])
		t.created = kept
	}
	for len(t.calls) > t.cfg.MaxCalls {
		if c := t.popEnded(); c != nil {
			t.drop(c)
			continue
		}
		c := t.popOldestLive()
		if c == nil {
			return
		}
		t.finish(c, endEvicted)
		t.drop(c)
	}
}

func (t *Tracker) popEnded() *call {
	for len(t.endedQ) > 0 {
		c := t.endedQ[0]
		t.endedQ[0] = nil
		t.endedQ = t.endedQ[1:]
		if !c.dropped {
			return c
		}
	}
	return nil
}

func (t *Tracker) popOldestLive() *call {
	for len(t.created) > 0 {
		c := t.created[0]
		t.created[0] = nil
		t.created = t.created[1:]
		if !c.dropped && !c.ended {
			return c
		}
	}
	return nil
}

func (t *Tracker) drop(c *call) {
	c.dropped = true
	if t.calls[c.id] == c {
		delete(t.calls, c.id)
	}
	for _, l := range c.legs {
		for _, ch := range l.chans {
			if t.chans[ch.uid] == ch {
				delete(t.chans, ch.uid)
			}
		}
		for len(l.bridges) > 0 {
			t.leaveBridge(l, l.bridges[0])
		}
	}
	t.unawait(c)
}
