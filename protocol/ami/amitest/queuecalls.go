package amitest

import (
	"strconv"
	"strings"
	"time"
)

// Queue calls, as captures 14b-14d show them (README §27): a caller
// reaches queue "inbound" (Local/inbound@queues, or 800 in context
// callcenter), the queue's dialplan answers and runs Queue(): the caller
// joins (QueueCallerJoin), every available member is rung at once
// (ringall: AgentCalled and DialBegin per member); the first to answer
// is connected (DialEnd ANSWER, the others cancelled with cause 26,
// QueueCallerLeave, then AgentConnect, a bridge); when either side hangs
// up, AgentComplete (Reason agent when the operator's phone, the ";2"
// half of its Local pair, hung up; caller otherwise). A member that does
// not answer within the queue's timeout gets AgentRingNoAnswer (RingTime
// in ms) and the queue rings again after its retry; a caller who hangs
// up while waiting abandons (QueueCallerAbandon, QueueCallerLeave).
//
// Member phones (Local/<ext>@from-queue) ring DefaultQueueAnswerAfter
// and answer, 199 never answers, as in the lab's dialplan; SetOutcome
// of an extension overrides both.

// Timing of the captured queue and its operator phones.
const (
	// DefaultQueueAnswerAfter: from-queue phones Ringing(), Wait(1), Answer().
	DefaultQueueAnswerAfter = time.Second
	// queueRingTimeout and queueRetry are queues.conf's timeout and retry.
	queueRingTimeout = 5 * time.Second
	queueRetry       = time.Second
	// neverAnswers is the lab's from-queue extension that only rings.
	neverAnswers           = "199"
	causeAnsweredElsewhere = 26
)

// ringing is a member being rung for a caller.
type ringing struct {
	m    *member
	l    *leg
	at   time.Time
	done bool
}

// queueCall is the state of one caller of a queue.
type queueCall struct {
	q        *queue
	ch       *channel // the channel running Queue()
	joined   time.Time
	position int
	rings    []*ringing
	// Once connected: the member, its Local leg and when.
	member      *member
	leg         *leg
	connectedAt time.Time
	completed   bool
}

// isQueueEntry reports whether a Local leg dials into the captured
// queue: Local/inbound@queues, or 800@callcenter (Goto(queues,inbound,1)).
func isQueueEntry(l *leg) bool {
	return strings.EqualFold(l.context, "queues") && l.exten == "inbound" ||
		strings.EqualFold(l.context, "callcenter") && l.exten == "800"
}

// enterQueue plays the queue's dialplan on a new Local pair: Answer(),
// then Queue(inbound). It reports false for a leg not meant for a queue.
// Callers hold s.mu.
func (s *Server) enterQueue(l *leg) bool {
	if !isQueueEntry(l) {
		return false
	}
	q := s.findQueue("inbound")
	now := s.cfg.Now()
	s.emitLocalBridge(l)
	one, two := l.one, l.two
	two.context, two.exten = "queues", "inbound"
	two.state, two.priority, two.app, two.appData, two.answered = stateUp, 2, "Answer", "", now
	s.emitChan("Newstate", two)
	one.state, one.answered = stateUp, now
	s.emitChan("Newstate", one)
	l.decided = true
	if o := l.orig; o != nil {
		if o.app != "" {
			one.app, one.appData = o.app, o.data
		}
		s.finish(o, origResult{ok: true, reason: reasonAnswered})
	}
	two.priority, two.app, two.appData = 3, "Queue", "inbound,t,,,300"
	q.prune()
	qc := &queueCall{q: q, ch: two, joined: now}
	q.calls = append(q.calls, qc)
	qc.position = len(q.waiting()) // the newest caller: its position is the count
	w := newEvent("QueueCallerJoin", "agent,all").channelBlock("", two)
	w.h("Queue", q.name).hi("Position", qc.position).hi("Count", qc.position)
	s.emit(classAgent, w.done())
	s.ringQueue(q)
	return true
}

// waiting is the callers not connected yet, in queue order: the
// queue's callers of QueueStatus and QueueSummary.
func (q *queue) waiting() []*queueCall {
	var out []*queueCall
	for _, qc := range q.calls {
		if qc.member == nil && !qc.completed {
			out = append(out, qc)
		}
	}
	return out
}

// available: a member ringall may ring now.
func (q *queue) available(m *member) bool {
	if m.paused || m.inCall || m.status != memberNotInUse {
		return false
	}
	for _, qc := range q.calls {
		for _, r := range qc.rings {
			if r.m == m && !r.done {
				return false
			}
		}
	}
	return true
}

// ringQueue rings every available member for the first waiting caller
// (ringall). Callers hold s.mu.
func (s *Server) ringQueue(q *queue) {
	w := q.waiting()
	if len(w) == 0 {
		return
	}
	qc := w[0]
	for _, m := range q.members {
		if q.available(m) {
			s.ringMember(qc, m)
		}
	}
}

// ringMember dials member m for caller qc: a Local pair to
// <ext>@from-queue that rings, then answers or not.
func (s *Server) ringMember(qc *queueCall, m *member) {
	tech, data, _ := strings.Cut(m.iface, "/")
	if !strings.EqualFold(tech, "Local") {
		return // the lab has Local channels only: nothing to ring
	}
	exten, ctx := splitLocal(data)
	l := s.newLeg(exten, ctx, [2]string{})
	l.caller, l.dialData = qc.ch, m.iface
	l.one.linkedid, l.two.linkedid = qc.ch.linkedid, qc.ch.linkedid
	for _, c := range []*channel{l.one, l.two} {
		c.cidNum, c.cidName, c.connNum, c.connName = qc.ch.cidNum, qc.ch.cidName, qc.ch.cidNum, qc.ch.cidName
	}
	l.one.exten = "inbound"
	r := &ringing{m: m, l: l, at: s.cfg.Now()}
	qc.rings = append(qc.rings, r)
	s.emitChan("Newchannel", l.one)
	s.emitChan("Newchannel", l.two)
	s.emit(classAgent, agentEvent("AgentCalled", qc, l.one, m).done())
	s.emitLocalBridge(l)
	s.emitDial("DialBegin", qc.ch, l.one, "DialString", data)
	l.two.priority, l.two.app, l.two.appData = 2, "Ringing", ""
	l.one.state = stateRinging
	s.emitChan("Newstate", l.one)
	s.emitDial("DialState", qc.ch, l.one, "DialStatus", "RINGING")
	m.status = memberInUse // a Local member is in use while it rings (§27)
	answerAfter := DefaultQueueAnswerAfter
	out, set := s.outcomes[exten]
	switch {
	case set && out.r == resultAnswer:
		answerAfter = out.ringFor
	case set || exten == neverAnswers:
		answerAfter = -1
	}
	stillRinging := func() bool { return !r.done && !l.one.gone && qc.member == nil && !qc.completed }
	if answerAfter >= 0 {
		s.sched.after(answerAfter, func() {
			if stillRinging() {
				s.memberAnswered(qc, r)
			}
		})
	}
	s.sched.after(qc.q.ringTimeout(), func() {
		if stillRinging() {
			s.ringNoAnswer(qc, r)
		}
	})
}

func (q *queue) ringTimeout() time.Duration {
	if q.timeout > 0 {
		return q.timeout
	}
	return queueRingTimeout
}

// ringNoAnswer ends a member's ring at the queue's timeout; the queue
// rings again after its retry.
func (s *Server) ringNoAnswer(qc *queueCall, r *ringing) {
	r.done = true
	w := agentEvent("AgentRingNoAnswer", qc, r.l.one, r.m)
	w.h("RingTime", strconv.FormatInt(s.cfg.Now().Sub(r.at).Milliseconds(), 10))
	s.emit(classAgent, w.done())
	s.dropRing(qc, r, causeUnknown, "NOANSWER")
	s.sched.after(queueRetry, func() {
		if !qc.completed && qc.member == nil && !qc.ch.gone {
			s.ringQueue(qc.q)
		}
	})
}

// dropRing hangs up a member's ringing leg after its Dial ended with
// status.
func (s *Server) dropRing(qc *queueCall, r *ringing, cause int, status string) {
	r.done = true
	r.l.decided = true
	s.emitDial("DialEnd", qc.ch, r.l.one, "DialStatus", status)
	s.emitHangupRequest("HangupRequest", r.l.two, cause)
	s.hangupChannel(r.l.one, cause)
	s.hangupChannel(r.l.two, cause)
	r.m.status = memberNotInUse
}

// memberAnswered connects caller qc to the member whose phone answered.
func (s *Server) memberAnswered(qc *queueCall, r *ringing) {
	now := s.cfg.Now()
	pos := qc.q.position(qc)
	l := r.l
	r.done = true
	l.decided = true
	l.two.state, l.two.priority, l.two.app, l.two.appData, l.two.answered = stateUp, 4, "Wait", "600", now
	s.emitChan("Newstate", l.two)
	l.one.state, l.one.answered = stateUp, now
	l.one.app, l.one.appData = "AppQueue", "(Outgoing Line)"
	s.emitChan("Newstate", l.one)
	s.emitDial("DialEnd", qc.ch, l.one, "DialStatus", "ANSWER")
	for _, o := range qc.rings {
		if !o.done {
			s.dropRing(qc, o, causeAnsweredElsewhere, "CANCEL")
		}
	}
	q, m := qc.q, r.m
	qc.member, qc.leg, qc.connectedAt = m, l, now
	qc.ch.dialed = l
	s.emitCallerLeave(qc, pos)
	hold := int(now.Sub(qc.joined).Seconds())
	w := agentEvent("AgentConnect", qc, l.one, m).hi("HoldTime", hold)
	w.hi("RingTime", int(now.Sub(r.at).Seconds()))
	s.emit(classAgent, w.done())
	m.inCall, m.status = true, memberInUse
	m.callsTaken, m.lastCall = m.callsTaken+1, now.Unix()
	q.completed++
	q.holdtime = (q.holdtime*(q.completed-1) + hold) / q.completed
	b := s.createBridge("")
	s.enterBridge(b, l.one)
	s.enterBridge(b, qc.ch)
}

// agentEvent starts the events about a member rung for or connected to a
// caller: the caller, the member's Local channel (Dest), the queue and
// the member.
func agentEvent(name string, qc *queueCall, dest *channel, m *member) *wire {
	w := newEvent(name, "agent,all").channelBlock("", qc.ch).channelBlock("Dest", dest)
	return w.h("Queue", qc.q.name).h("Interface", m.iface).h("MemberName", m.name)
}

// emitCallerLeave is QueueCallerLeave: qc, which had position pos, is
// no longer waiting (connected or completed).
func (s *Server) emitCallerLeave(qc *queueCall, pos int) {
	w := newEvent("QueueCallerLeave", "agent,all").channelBlock("", qc.ch)
	s.emit(classAgent, w.h("Queue", qc.q.name).hi("Position", pos).hi("Count", len(qc.q.waiting())).done())
}

// position is qc's place among the waiting callers, from 1; it must be
// read before qc stops waiting.
func (q *queue) position(qc *queueCall) int {
	for i, c := range q.waiting() {
		if c == qc {
			return i + 1
		}
	}
	return qc.position
}

// queueChannelGone is told of every channel about to hang up: a waiting
// caller abandons, a connected call completes. Callers hold s.mu.
func (s *Server) queueChannelGone(c *channel) {
	for _, q := range s.model.queues {
		for _, qc := range q.calls {
			if qc.completed {
				continue
			}
			switch {
			case qc.member == nil && (c == qc.ch || c == qc.ch.partner):
				s.abandon(qc)
			case qc.member != nil && (c == qc.ch || c == qc.ch.partner || c == qc.leg.one || c == qc.leg.two):
				s.complete(qc, c)
			}
		}
	}
}

// abandon: the caller hung up while waiting.
func (s *Server) abandon(qc *queueCall) {
	q := qc.q
	pos := q.position(qc)
	qc.completed = true
	for _, r := range qc.rings {
		if !r.done {
			s.dropRing(qc, r, causeUnknown, "CANCEL")
		}
	}
	hold := int(s.cfg.Now().Sub(qc.joined).Seconds())
	w := newEvent("QueueCallerAbandon", "agent,all").channelBlock("", qc.ch)
	s.emit(classAgent, w.h("Queue", q.name).hi("Position", pos).hi("OriginalPosition", qc.position).hi("HoldTime", hold).done())
	s.emitCallerLeave(qc, pos)
	q.abandoned++
}

// complete: one side of a connected queue call hung up. Only the
// operator's phone (the ";2" half) hanging up is the agent's doing.
func (s *Server) complete(qc *queueCall, c *channel) {
	qc.completed = true
	q, m := qc.q, qc.member
	reason := "caller"
	if c == qc.leg.two {
		reason = "agent"
	}
	now := s.cfg.Now()
	talk := int(now.Sub(qc.connectedAt).Seconds())
	w := newEvent("AgentComplete", "agent,all")
	if c != qc.leg.one {
		// A Hangup of the member channel itself leaves Asterisk no
		// snapshot of either side to report (14b4).
		w.channelBlock("", qc.ch).channelBlock("Dest", qc.leg.one)
	}
	w.h("Queue", q.name).h("Interface", m.iface).h("MemberName", m.name)
	w.hi("HoldTime", int(qc.connectedAt.Sub(qc.joined).Seconds())).hi("TalkTime", talk).h("Reason", reason)
	s.emit(classAgent, w.done())
	q.talktime = (q.talktime*(q.completed-1) + talk) / max(q.completed, 1)
	m.inCall, m.status = false, memberNotInUse
	s.sched.after(0, func() { s.ringQueue(q) })
}

// prune forgets finished calls (never while queueChannelGone walks them).
func (q *queue) prune() {
	kept := q.calls[:0]
	for _, qc := range q.calls {
		if !qc.completed {
			kept = append(kept, qc)
		}
	}
	q.calls = kept
}
