package calls

import (
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Queue events, from app_queue's AMI events (captures 14-14d, README §27):
//
//   - QueueCallerJoin → queue.caller_joined;
//   - QueueCallerLeave → queue.caller_left, with why: answered when the
//     queue's Dial of a member ended ANSWER before it (AgentConnect comes
//     only after the Leave), abandoned when QueueCallerAbandon came and the
//     caller's channel was hanging up, timeout when QueueCallerAbandon
//     came without a hangup (Queue()'s timeout also reports an abandon,
//     then sets QUEUESTATUS=TIMEOUT), exited otherwise;
//   - QueueMemberAdded / QueueMemberRemoved / QueueMemberPause →
//     queue.member_added / _removed / _paused / _unpaused.
//
// The call's own call.answered (the operator AgentConnect names) comes
// from the Dial the queue placed, like any call's (lifecycle.go).

// queueWait is a caller waiting in a queue, by its channel's uniqueid.
type queueWait struct {
	queue      string
	joined     time.Time
	position   int
	hangingUp  bool
	abandoned  bool
	holdTime   int // QueueCallerAbandon's HoldTime
	answered   string
	memberName string
}

func (t *Tracker) onQueueEvent(m *ami.Message) {
	switch m.Event() {
	case "QueueCallerJoin":
		t.onQueueJoin(m)
	case "QueueCallerAbandon":
		if w := t.waiting[m.Get("Uniqueid")]; w != nil {
			w.abandoned, w.holdTime = true, atoi(m.Get("HoldTime"))
		}
	case "QueueCallerLeave":
		t.onQueueLeave(m)
	case "QueueMemberAdded":
		t.memberEvent(m, protocol.EventQueueMemberAdded)
	case "QueueMemberRemoved":
		t.memberEvent(m, protocol.EventQueueMemberRemoved)
	case "QueueMemberPause":
		if m.Get("Paused") == "1" {
			t.memberEvent(m, protocol.EventQueueMemberPaused)
		} else {
			t.memberEvent(m, protocol.EventQueueMemberUnpaused)
		}
	}
}

func (t *Tracker) onQueueJoin(m *ami.Message) {
	uid := m.Get("Uniqueid")
	if uid == "" || t.over(m) {
		return
	}
	if len(t.waiting) >= t.cfg.MaxCalls {
		return // bounded like the calls; this caller's queue events are lost
	}
	w := &queueWait{queue: m.Get("Queue"), joined: t.clockNow, position: atoi(m.Get("Position"))}
	t.waiting[uid] = w
	e := t.callEvent(m, protocol.EventQueueCallerJoined)
	e.Queue, e.Position = w.queue, w.position
	// The caller as the queue sees it: a call a CRM put in the queue is
	// from its caller id, which the call itself learns only when the
	// queue rings someone with it (becomeFront).
	if num := knownValue(m.Get("CallerIDNum")); num != "" {
		e.From = num
	}
	t.out = append(t.out, e)
}

func (t *Tracker) onQueueLeave(m *ami.Message) {
	uid := m.Get("Uniqueid")
	w := t.waiting[uid]
	if w == nil {
		return
	}
	delete(t.waiting, uid)
	if t.over(m) {
		return
	}
	e := t.callEvent(m, protocol.EventQueueCallerLeft)
	e.Queue, e.Position = w.queue, w.position
	hold := seconds(t.clockNow.Sub(w.joined))
	switch {
	case w.answered != "":
		e.Reason = protocol.LeftAnswered
		e.AnsweredBy, e.Member, e.MemberName = extOf(w.answered), w.answered, w.memberName
	case w.abandoned && w.hangingUp:
		e.Reason, hold = protocol.LeftAbandoned, w.holdTime
	case w.abandoned:
		e.Reason, hold = protocol.LeftTimeout, w.holdTime
	default:
		e.Reason = protocol.LeftExited
	}
	e.HoldTimeS = &hold
	t.out = append(t.out, e)
}

// queueDialEnd notes that the queue a caller waits in connected a member:
// the caller's own Dial of the member's channel ended ANSWER.
func (t *Tracker) queueDialEnd(m *ami.Message) {
	if w := t.waiting[m.Get("Uniqueid")]; w != nil && strings.EqualFold(m.Get("DialStatus"), "ANSWER") {
		w.answered = m.Get("DestChannel")
	}
}

// queueVarSet reads the member app_queue sets on the caller's channel
// before it leaves (MEMBERINTERFACE, MEMBERNAME).
func (t *Tracker) queueVarSet(m *ami.Message) {
	w := t.waiting[m.Get("Uniqueid")]
	if w == nil {
		return
	}
	switch m.Get("Variable") {
	case "MEMBERINTERFACE":
		if v := m.Get("Value"); v != "" && w.answered != "" {
			w.answered = v
		}
	case "MEMBERNAME":
		w.memberName = m.Get("Value")
	}
}

// queueHangup marks a waiting caller whose channel (or the other half of
// its Local pair) is going away: its abandon is the caller's.
func (t *Tracker) queueHangup(m *ami.Message) {
	if len(t.waiting) == 0 {
		return
	}
	if w := t.waiting[m.Get("Uniqueid")]; w != nil {
		w.hangingUp = true
		if m.Event() == "Hangup" {
			// Gone without the QueueCallerLeave Asterisk sends first (a
			// missed event): it left, abandoning.
			w.abandoned = true
			t.onQueueLeave(m)
		}
		return
	}
	// A Local caller hung up on its ;1 half: its ;2 half waits in Queue().
	if ch := t.chans[m.Get("Uniqueid")]; ch != nil {
		for _, other := range ch.leg.chans {
			if w := t.waiting[other.uid]; w != nil {
				w.hangingUp = true
			}
		}
	}
}

// over reports whether m's channel belongs to a call that has already
// ended (or has itself hung up), tracked or remembered as ended: nothing
// more is said about it.
func (t *Tracker) over(m *ami.Message) bool {
	uid := m.Get("Uniqueid")
	if ch := t.chans[uid]; ch != nil {
		return ch.gone || ch.leg.call.ended
	}
	id := m.Get("Linkedid")
	if id == "" {
		id = uid
	}
	c := t.calls[id]
	return c != nil && c.ended
}

// callEvent starts an event about the call of m's channel: the tracked
// call's, or one naming only the call id (the channel's linkedid) for a
// call the tracker does not follow.
func (t *Tracker) callEvent(m *ami.Message, typ string) protocol.Event {
	if ch := t.chans[m.Get("Uniqueid")]; ch != nil {
		e := t.event(ch.leg.call, typ, t.clockNow)
		e.Channel = ch.name
		return e
	}
	id := m.Get("Linkedid")
	if id == "" {
		id = m.Get("Uniqueid")
	}
	return protocol.Event{Type: typ, Time: t.clockNow, CallID: id, LinkedID: id, Channel: m.Get("Channel")}
}

func (t *Tracker) memberEvent(m *ami.Message, typ string) {
	iface := m.Get("Interface")
	e := protocol.Event{Type: typ, Time: t.clockNow, Queue: m.Get("Queue"), Member: iface, MemberName: m.Get("MemberName"),
		Extension: extOf(iface)}
	if typ == protocol.EventQueueMemberPaused {
		e.Reason = m.Get("PausedReason")
	}
	t.out = append(t.out, e)
}
