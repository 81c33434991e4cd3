package amitest

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// The queue model: app_queue's queue "inbound" of the captures (ringall,
// static members Local/101@from-queue/n "Operator 101" and
// Local/102@from-queue/n "Operator 102") and its AMI actions, answering
// like capture 14-queue-admin (README §26).

func init() {
	addActions([]action{
		{"QueueStatus", "Show queue status.  (Priv: <none>)", (*session).actionQueueStatus},
		{"QueueSummary", "Show queue summary.  (Priv: <none>)", (*session).actionQueueSummary},
		{"QueueAdd", "Add interface to queue.  (Priv: agent,all)", (*session).actionQueueAdd},
		{"QueuePause", "Makes a queue member temporarily unavailable.  (Priv: agent,all)", (*session).actionQueuePause},
		{"QueuePenalty", "Set the penalty for a queue member.  (Priv: agent,all)", (*session).actionQueuePenalty},
		{"QueueRemove", "Remove interface from queue.  (Priv: agent,all)", (*session).actionQueueRemove},
	})
}

// Member device states (QueueMember Status).
const (
	memberNotInUse = 1
	memberInUse    = 2
	memberInvalid  = 4
)

type queue struct {
	name, strategy       string
	members              []*member // Asterisk lists them in its hash order; ours is insertion order
	completed, abandoned int
	holdtime, talktime   int
	calls                []*queueCall  // queuecalls.go; waiting() are its callers
	timeout              time.Duration // a member's ring; 0: queueRingTimeout
}

type member struct {
	name, iface         string
	dynamic             bool
	penalty             int
	paused              bool
	reason              string
	callsTaken          int
	lastCall, lastPause int64
	loginTime           int64
	inCall              bool
	status              int
}

// queueModel lazily sets up the captured queue: its static members logged
// in when the server started. Callers hold s.mu.
func (s *Server) queueModel() []*queue {
	if s.model.queues == nil {
		login := s.startTime.Unix()
		if s.startTime.IsZero() {
			login = s.cfg.Now().Unix()
		}
		q := &queue{name: "inbound", strategy: "ringall"}
		for _, ext := range []string{"101", "102"} {
			q.members = append(q.members, &member{name: "Operator " + ext, iface: "Local/" + ext + "@from-queue/n",
				loginTime: login, status: memberNotInUse})
		}
		s.model.queues = []*queue{q}
	}
	return s.model.queues
}

func (s *Server) findQueue(name string) *queue {
	for _, q := range s.queueModel() {
		if strings.EqualFold(q.name, name) {
			return q
		}
	}
	return nil
}

func (q *queue) member(iface string) *member {
	for _, m := range q.members {
		if strings.EqualFold(m.iface, iface) {
			return m
		}
	}
	return nil
}

// ifaceStatus is the device state of a new member's interface: the lab's
// Asterisk has Local channels only, anything else is invalid (14h).
func ifaceStatus(iface string) int {
	tech, _, _ := strings.Cut(iface, "/")
	if strings.EqualFold(tech, "Local") {
		return memberNotInUse
	}
	return memberInvalid
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// memberFields are the member headers of QueueMember* events, in the
// order of capture 14.
func (w *wire) memberFields(q *queue, m *member) *wire {
	w.h("Queue", q.name).h("MemberName", m.name).h("Interface", m.iface).h("StateInterface", m.iface)
	w.h("Membership", membership(m)).hi("Penalty", m.penalty).hi("CallsTaken", m.callsTaken)
	w.h("LastCall", strconv.FormatInt(m.lastCall, 10)).h("LastPause", strconv.FormatInt(m.lastPause, 10))
	w.h("LoginTime", strconv.FormatInt(m.loginTime, 10)).hi("InCall", boolInt(m.inCall)).hi("Status", m.status)
	w.hi("Paused", boolInt(m.paused)).h("PausedReason", m.reason).h("Ringinuse", "0").h("Wrapuptime", "0")
	return w
}

func membership(m *member) string {
	if m.dynamic {
		return "dynamic"
	}
	return "static"
}

func (s *Server) emitMember(event string, q *queue, m *member) {
	s.emit(classAgent, newEvent(event, "agent,all").memberFields(q, m).done())
}

func (c *session) actionQueueStatus(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	name, memberFilter := m.Get("Queue"), m.Get("Member")
	c.write(response("Success", m).h("EventList", "start").h("Message", "Queue status will follow").done())
	now := s.cfg.Now().Unix()
	items := 0
	for _, q := range s.queueModel() {
		if name != "" && !strings.EqualFold(name, q.name) {
			continue
		}
		w := newEvent("QueueParams", "").h("Queue", q.name).h("Max", "0").h("Strategy", q.strategy)
		callers := q.waiting()
		w.hi("Calls", len(callers)).hi("Holdtime", q.holdtime).hi("TalkTime", q.talktime)
		w.hi("Completed", q.completed).hi("Abandoned", q.abandoned).h("ServiceLevel", "0")
		w.h("ServicelevelPerf", "0.0").h("ServicelevelPerf2", "0.0").h("Weight", "0")
		c.write(w.actionID(m).done())
		items++
		for _, mb := range q.members {
			if memberFilter != "" && !strings.EqualFold(memberFilter, mb.iface) && !strings.EqualFold(memberFilter, mb.name) {
				continue
			}
			w := newEvent("QueueMember", "").h("Queue", q.name).h("Name", mb.name).h("Location", mb.iface)
			w.h("StateInterface", mb.iface).h("Membership", membership(mb)).hi("Penalty", mb.penalty)
			w.hi("CallsTaken", mb.callsTaken).h("LastCall", strconv.FormatInt(mb.lastCall, 10))
			w.h("LastPause", strconv.FormatInt(mb.lastPause, 10)).h("LoginTime", strconv.FormatInt(mb.loginTime, 10))
			w.hi("InCall", boolInt(mb.inCall)).hi("Status", mb.status).hi("Paused", boolInt(mb.paused))
			w.h("PausedReason", mb.reason).h("Wrapuptime", "0")
			c.write(w.actionID(m).done())
			items++
		}
		for i, qc := range callers {
			w := newEvent("QueueEntry", "").h("Queue", q.name).hi("Position", i+1).h("Channel", qc.ch.name)
			w.h("Uniqueid", qc.ch.uniqueid).h("CallerIDNum", orUnknown(qc.ch.cidNum)).h("CallerIDName", orUnknown(qc.ch.cidName))
			w.h("ConnectedLineNum", orUnknown(qc.ch.connNum)).h("ConnectedLineName", orUnknown(qc.ch.connName))
			w.h("Wait", strconv.FormatInt(now-qc.joined.Unix(), 10)).h("Priority", "0")
			c.write(w.actionID(m).done())
			items++
		}
	}
	c.write(newEvent("QueueStatusComplete", "").actionID(m).h("EventList", "Complete").hi("ListItems", items).done())
	return false
}

func (c *session) actionQueueSummary(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	name := m.Get("Queue")
	c.write(response("Success", m).h("EventList", "start").h("Message", "Queue summary will follow").done())
	now := s.cfg.Now().Unix()
	items := 0
	for _, q := range s.queueModel() {
		if name != "" && !strings.EqualFold(name, q.name) {
			continue
		}
		loggedIn, available := 0, 0
		for _, mb := range q.members {
			if mb.status != memberInvalid {
				loggedIn++
			}
			if mb.status == memberNotInUse && !mb.paused {
				available++
			}
		}
		var longest int64
		callers := q.waiting()
		for _, qc := range callers {
			longest = max(longest, now-qc.joined.Unix())
		}
		w := newEvent("QueueSummary", "").h("Queue", q.name).hi("LoggedIn", loggedIn).hi("Available", available)
		w.hi("Callers", len(callers)).hi("HoldTime", q.holdtime).hi("TalkTime", q.talktime)
		w.h("LongestHoldTime", strconv.FormatInt(longest, 10))
		c.write(w.actionID(m).done())
		items++
	}
	c.write(newEvent("QueueSummaryComplete", "").actionID(m).h("EventList", "Complete").hi("ListItems", items).done())
	return false
}

func (c *session) actionQueueAdd(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.require(m, "Queue", "'Queue' not specified.", "Interface", "'Interface' not specified.") {
		return false
	}
	qname, iface := m.Get("Queue"), m.Get("Interface")
	q := s.findQueue(qname)
	if q == nil {
		c.write(errorResponse(m, "Unable to add interface to queue: No such queue"))
		return false
	}
	if q.member(iface) != nil {
		c.write(errorResponse(m, "Unable to add interface: Already there"))
		return false
	}
	now := s.cfg.Now().Unix()
	mb := &member{name: m.Get("MemberName"), iface: iface, dynamic: true, loginTime: now, status: ifaceStatus(iface)}
	if mb.name == "" {
		mb.name = iface
	}
	if p, err := strconv.Atoi(m.Get("Penalty")); err == nil && p > 0 {
		mb.penalty = p
	}
	if astTrue(m.Get("Paused")) {
		mb.paused, mb.reason, mb.lastPause = true, m.Get("Reason"), now
	}
	q.members = append(q.members, mb)
	c.write(successResponse(m, "Added interface to queue"))
	s.emitMember("QueueMemberAdded", q, mb)
	s.ringQueue(q)
	return false
}

// membersOf are the members with iface, in queue qname or, when it is
// empty, in every queue.
func (s *Server) membersOf(qname, iface string) (qs []*queue, ms []*member) {
	for _, q := range s.queueModel() {
		if qname != "" && !strings.EqualFold(q.name, qname) {
			continue
		}
		if mb := q.member(iface); mb != nil {
			qs, ms = append(qs, q), append(ms, mb)
		}
	}
	return qs, ms
}

func (c *session) actionQueuePause(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	iface, pausedS := m.Get("Interface"), m.Get("Paused")
	if iface == "" || pausedS == "" {
		c.write(errorResponse(m, "Need 'Interface' and 'Paused' parameters."))
		return false
	}
	qs, ms := s.membersOf(m.Get("Queue"), iface)
	if len(ms) == 0 {
		c.write(errorResponse(m, "Interface not found"))
		return false
	}
	paused := astTrue(pausedS)
	if paused {
		c.write(successResponse(m, "Interface paused successfully"))
	} else {
		c.write(successResponse(m, "Interface unpaused successfully"))
	}
	now := s.cfg.Now().Unix()
	for i, mb := range ms {
		// Pausing a paused member succeeds and repeats the event (14l).
		mb.paused, mb.reason = paused, ""
		if paused {
			mb.reason, mb.lastPause = m.Get("Reason"), now
		}
		s.emitMember("QueueMemberPause", qs[i], mb)
	}
	for _, q := range qs {
		s.ringQueue(q)
	}
	return false
}

func (c *session) actionQueuePenalty(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	iface, penS := m.Get("Interface"), m.Get("Penalty")
	if iface == "" || penS == "" {
		c.write(errorResponse(m, "Need 'Interface' and 'Penalty' parameters."))
		return false
	}
	pen, err := strconv.Atoi(penS)
	qs, ms := s.membersOf(m.Get("Queue"), iface)
	if err != nil || pen < 0 || len(ms) == 0 {
		c.write(errorResponse(m, "Invalid interface, queuename or penalty"))
		return false
	}
	c.write(successResponse(m, "Interface penalty set successfully"))
	for i, mb := range ms {
		mb.penalty = pen
		s.emitMember("QueueMemberPenalty", qs[i], mb)
	}
	return false
}

func (c *session) actionQueueRemove(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	qname, iface := m.Get("Queue"), m.Get("Interface")
	if qname == "" || iface == "" {
		c.write(errorResponse(m, "Need 'Queue' and 'Interface' parameters."))
		return false
	}
	q := s.findQueue(qname)
	if q == nil {
		c.write(errorResponse(m, "Unable to remove interface from queue: No such queue"))
		return false
	}
	mb := q.member(iface)
	switch {
	case mb == nil:
		c.write(errorResponse(m, "Unable to remove interface: Not there"))
		return false
	case !mb.dynamic:
		c.write(errorResponse(m, "Member not dynamic"))
		return false
	}
	for i, x := range q.members {
		if x == mb {
			q.members = append(q.members[:i], q.members[i+1:]...)
			break
		}
	}
	c.write(successResponse(m, "Removed interface from queue"))
	s.emitMember("QueueMemberRemoved", q, mb)
	return false
}
