package amitest

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// origination is one Originate (or StartCall) in progress.
type origination struct {
	actionID    string
	hasActionID bool
	dialString  string // the requested Channel, e.g. Local/150@inoffice
	app, data   string
	exten, ctx  string // the Exten/Context/Priority form
	priority    int
	cidName     string
	cidNum      string
	vars        []ami.Header
	ids         [2]string // ChannelId, OtherChannelId
	timeout     time.Duration
	event       bool            // emit OriginateResponse (false for StartCall)
	result      chan origResult // sync Originate waits on it
	leg         *leg            // the Local pair, once placed
	finished    bool
}

type origResult struct {
	ok     bool
	reason int
}

// Originate Reasons (Asterisk's AST_CONTROL_* values in OriginateResponse).
const (
	reasonFailed     = 0
	reasonHangup     = 1
	reasonNoAnswer   = 3
	reasonAnswered   = 4
	reasonBusy       = 5
	reasonCongestion = 8
)

// finish reports the outcome of an origination once: OriginateResponse for
// an async one, the waiting handler for a sync one.
func (s *Server) finish(o *origination, res origResult) {
	if o.finished {
		return
	}
	o.finished = true
	if o.event {
		w := newEvent("OriginateResponse", "call,all")
		if o.hasActionID {
			w.h("ActionID", o.actionID)
		}
		chName, uid := o.dialString, "<unknown>"
		if res.ok && o.leg != nil {
			chName, uid = o.leg.one.name, o.leg.one.uniqueid
		}
		if res.ok {
			w.h("Response", "Success")
		} else {
			w.h("Response", "Failure")
		}
		w.h("Channel", chName)
		if o.app != "" {
			w.h("Application", o.app).h("Data", o.data)
		} else {
			w.h("Context", o.ctx).h("Exten", o.exten)
		}
		w.hi("Reason", res.reason).h("Uniqueid", uid)
		w.h("CallerIDNum", orUnknown(o.cidNum)).h("CallerIDName", orUnknown(o.cidName))
		s.emit(classCall, w.done())
	}
	if o.result != nil {
		o.result <- res // buffered, never blocks
	}
}

// splitLocal parses the data of a Local channel, "<exten>@<context>[/opts]".
func splitLocal(data string) (exten, ctx string) {
	if i := strings.IndexByte(data, '/'); i >= 0 {
		data = data[:i]
	}
	exten, ctx, ok := strings.Cut(data, "@")
	if !ok {
		ctx = "default"
	}
	return exten, ctx
}

// placeOrigination creates the Local pair of an Originate or StartCall
// and starts it ringing. Callers hold s.mu.
func (s *Server) placeOrigination(o *origination) {
	tech, data, _ := strings.Cut(o.dialString, "/")
	if !strings.EqualFold(tech, "Local") {
		// No such channel technology (transcript 04e): nothing is created.
		s.finish(o, origResult{reason: reasonFailed})
		return
	}
	for _, id := range o.ids {
		if id != "" && s.model.uniqueidInUse(id) {
			s.log.Debug("originate with a uniqueid in use", "uniqueid", id)
			s.finish(o, origResult{reason: reasonFailed})
			return
		}
	}
	exten, ctx := splitLocal(data)
	l := s.newLeg(exten, ctx, o.ids)
	l.orig = o
	l.timeout = o.timeout
	o.leg = l
	for _, v := range o.vars {
		l.one.setVar(v.Key, v.Value)
		l.two.setVar(v.Key, v.Value)
	}
	s.startLeg(l, func() {
		if o.cidName != "" || o.cidNum != "" {
			for _, c := range []*channel{l.one, l.two} {
				c.cidName, c.cidNum, c.connName, c.connNum = o.cidName, o.cidNum, o.cidName, o.cidNum
			}
		}
	})
}

// newLeg allocates a Local pair; ids are optional uniqueids for ;1 and ;2.
func (s *Server) newLeg(exten, ctx string, ids [2]string) *leg {
	m := &s.model
	now := s.cfg.Now()
	l := &leg{exten: exten, context: ctx}
	base := fmt.Sprintf("Local/%s@%s-%08x", exten, ctx, m.localSeq)
	m.localSeq++
	m.processedCalls++
	mk := func(half int, id string) *channel {
		if id == "" {
			id = m.newUniqueid(now)
		}
		return &channel{
			name: fmt.Sprintf("%s;%d", base, half), uniqueid: id, half: half, leg: l,
			context: ctx, exten: exten, priority: 1, created: now,
		}
	}
	l.one = mk(1, ids[0])
	l.two = mk(2, ids[1])
	l.one.linkedid = l.one.uniqueid
	l.two.linkedid = l.one.uniqueid
	l.one.partner, l.two.partner = l.two, l.one
	l.one.state, l.two.state = stateDown, stateRing
	l.one.app, l.one.appData = "AppDial2", "(Outgoing Line)"
	m.add(l.one)
	m.add(l.two)
	return l
}

// startLeg announces a new Local pair and applies the dialled extension's
// outcome, now or after it rang (transcripts 03 and 04). setup runs after
// the two Newchannel events (caller id is set there, as Asterisk does).
func (s *Server) startLeg(l *leg, setup func()) {
	s.emitChan("Newchannel", l.one)
	s.emitChan("Newchannel", l.two)
	if setup != nil {
		setup()
	}
	if s.enterQueue(l) {
		return
	}
	out := s.outcomeFor(l.exten)
	if !strings.EqualFold(l.context, s.model.context) {
		out = NoSuchExtension
	}
	if out.r == resultNoSuchExtension {
		s.legFailed(l, resultNoSuchExtension)
		return
	}
	s.emitLocalBridge(l)
	s.emitDial("DialBegin", l.caller, l.one, "DialString", l.exten+"@"+l.context)
	ring := out.ringFor
	if ring == 0 && out.r == resultAnswer {
		ring = s.cfg.RingDelay
	}
	if out.r == resultNoAnswer || ring > 0 {
		l.two.priority, l.two.app, l.two.appData = 3, "Wait", "600" // Ringing() then Wait(600)
		l.one.state = stateRinging
		s.emitChan("Newstate", l.one)
		s.emitDial("DialState", l.caller, l.one, "DialStatus", "RINGING")
	}
	if l.timeout > 0 {
		s.sched.after(l.timeout, func() {
			if !l.decided && !l.one.gone {
				s.legFailed(l, resultNoAnswer)
			}
		})
	}
	if out.r == resultNoAnswer {
		return
	}
	apply := func() {
		if l.decided || l.one.gone {
			return
		}
		if out.r == resultAnswer {
			s.legAnswered(l)
		} else {
			s.legFailed(l, out.r)
		}
	}
	if ring > 0 {
		s.sched.after(ring, apply)
		return
	}
	apply()
}

func (s *Server) legAnswered(l *leg) {
	l.decided = true
	now := s.cfg.Now()
	one, two := l.one, l.two
	two.state, two.priority, two.app, two.appData = stateUp, 2, "Answer", ""
	two.answered = now
	s.emitChan("Newstate", two)
	one.state, one.answered = stateUp, now
	s.emitChan("Newstate", one)
	if l.caller != nil {
		// The dialled side now runs AppDial outside the dialplan (03: its
		// DialEnd and BridgeEnter carry an empty Exten).
		one.exten, one.app, one.appData = "", "AppDial", "(Outgoing Line)"
	}
	s.emitDial("DialEnd", l.caller, one, "DialStatus", "ANSWER")
	// Answer() waits for media before the dialplan goes on to Wait(600);
	// a Local channel carries none, so a call that ends sooner ends in
	// Answer at priority 2 (capture 18d/e).
	toWait := func() { two.priority, two.app, two.appData = 3, "Wait", "600" }
	if s.cfg.AnswerWait <= 0 {
		toWait()
	} else {
		s.sched.after(s.cfg.AnswerWait, func() {
			if !two.gone && two.priority == 2 {
				toWait()
			}
		})
	}

	if caller := l.caller; caller != nil {
		// A Dial leg: the dialled side joins its caller in a new bridge.
		caller.setVar("DIALSTATUS", "ANSWER")
		caller.setVar("BRIDGEPEER", one.name)
		one.setVar("BRIDGEPEER", caller.name)
		b := s.createBridge("")
		s.enterBridge(b, one)
		s.enterBridge(b, caller)
		s.spyKick()
		return
	}
	o := l.orig
	if o == nil {
		return
	}
	if o.app != "" {
		one.app, one.appData = o.app, o.data
	} else {
		one.context, one.exten, one.priority = o.ctx, o.exten, o.priority
		one.app, one.appData = "Wait", "600"
	}
	s.finish(o, origResult{ok: true, reason: reasonAnswered})
	switch strings.ToLower(o.app) {
	case "dial":
		s.dial(one, o.data)
	case "chanspy":
		s.startSpy(one, o.data)
	case "parkedcall":
		s.retrieve(one, o.data)
	case "":
		s.enterDialplan(one)
	}
	s.spyKick()
}

// dial runs Dial(data) on the answered channel caller.
func (s *Server) dial(caller *channel, data string) {
	target, rest, _ := strings.Cut(data, ",")
	tech, dest, _ := strings.Cut(target, "/")
	if !strings.EqualFold(tech, "Local") || dest == "" {
		// CHANUNAVAIL: Dial returns at once and the channel hangs up.
		caller.setVar("DIALSTATUS", "CHANUNAVAIL")
		s.hangupCall(caller, causeUnknown)
		return
	}
	exten, ctx := splitLocal(dest)
	l := s.newLeg(exten, ctx, [2]string{})
	l.caller = caller
	l.dialData = data
	caller.dialed = l
	if secs, _, _ := strings.Cut(rest, ","); secs != "" {
		var n int
		if _, err := fmt.Sscan(secs, &n); err == nil && n > 0 {
			l.timeout = time.Duration(n) * time.Second
		}
	}
	l.one.linkedid, l.two.linkedid = caller.linkedid, caller.linkedid
	s.startLeg(l, func() {
		num := caller.cidNum
		if num == "" || caller.context == parkDialContext {
			// A parked call dialling its parker back shows its exten
			// (Local_150@inoffice) as caller id (capture 20z2).
			num = caller.exten
		}
		l.one.cidNum, l.one.cidName = num, caller.cidName
		l.one.exten = caller.exten
		l.two.cidNum, l.two.cidName = caller.cidNum, caller.cidName
		l.two.connNum, l.two.connName = num, caller.cidName
	})
}

// legFailed plays the failure of a Local pair as transcript 04 shows it
// for busy, congestion, no answer and a missing extension, then tells the
// originator or ends the call of the channel that dialled.
func (s *Server) legFailed(l *leg, r result) {
	l.decided = true
	now := s.cfg.Now()
	one, two := l.one, l.two
	var cause, reason int
	var status, disp string
	switch r {
	case resultBusy:
		cause, reason, status, disp = causeBusy, reasonBusy, "BUSY", "BUSY"
		two.state, two.priority, two.app, two.appData = stateBusy, 2, "Busy", ""
		s.emitChan("Newstate", two)
		s.emitDial("DialEnd", l.caller, one, "DialStatus", status)
		s.emitHangupRequest("HangupRequest", two, causeUnknown)
		s.cdr(two, disp, nil, now)
		s.dialedCDR(l, disp, now)
		s.emitHangupRequest("SoftHangupRequest", two, causeNormal)
		s.hangupChannel(one, causeUnknown)
		s.hangupChannel(two, cause)
	case resultCongestion:
		cause, reason, status, disp = causeCongestion, reasonCongestion, "CONGESTION", "CONGESTION"
		two.state, two.priority, two.app, two.appData = stateBusy, 2, "Congestion", ""
		s.emitChan("Newstate", two)
		s.emitDial("DialEnd", l.caller, one, "DialStatus", status)
		s.dialedCDR(l, disp, now)
		s.emitHangupRequest("HangupRequest", two, causeUnknown)
		s.cdr(two, disp, nil, now)
		s.hangupChannel(one, causeUnknown)
		s.emitHangupRequest("SoftHangupRequest", two, causeNormal)
		s.hangupChannel(two, cause)
	case resultNoAnswer:
		cause, reason, status, disp = causeNoAnswer, reasonNoAnswer, "NOANSWER", "NO ANSWER"
		if l.caller != nil {
			s.emitDial("DialEnd", l.caller, one, "DialStatus", status)
		}
		s.emitHangupRequest("HangupRequest", two, cause)
		s.cdr(one, disp, nil, now)
		s.hangupChannel(one, cause)
		s.emitHangupRequest("SoftHangupRequest", two, causeNormal)
		s.hangupChannel(two, cause)
		s.cdr(two, disp, nil, now)
	default: // no such extension
		cause, reason, status, disp = causeUnknown, reasonFailed, "CHANUNAVAIL", "FAILED"
		two.app, two.appData = "", ""
		if l.caller != nil {
			s.emitDial("DialEnd", l.caller, one, "DialStatus", status)
		}
		s.hangupChannel(two, cause)
		s.cdr(two, disp, nil, now)
		s.cdr(one, disp, nil, now)
		s.hangupChannel(one, cause)
	}
	if o := l.orig; o != nil {
		s.finish(o, origResult{reason: reason})
	}
	if caller := l.caller; caller != nil && !caller.gone {
		// Dial returned; the originated channel has nothing left to run
		// and hangs up with no cause of its own (capture 18d/e: Cause 0
		// on both halves, not the busy or congestion of the leg).
		caller.setVar("DIALSTATUS", status)
		caller.dialed = nil
		if r == resultBusy || r == resultCongestion {
			l.failDisp = disp
			caller.dialFailed = l
			cause = causeUnknown
		}
		s.hangupCall(caller, cause)
	}
}

// dialedCDR is the Cdr of the dialled ;1 half of a failed leg: a leg an
// Originate placed has one; a leg a Dial placed has none, its caller's
// second record names it instead (capture 18d/e).
func (s *Server) dialedCDR(l *leg, disp string, now time.Time) {
	if l.caller == nil {
		s.cdr(l.one, disp, nil, now)
	}
}

// StartCall places a call that did not come through AMI — a phone dialling
// another, or an inbound call — as `channel originate Local/<from>@<ctx>
// application Dial Local/<to>@<ctx>` would, with the full event sequence.
// It returns the call's linkedid (the uniqueid of its first channel).
func (s *Server) StartCall(from, to string) (linkedid string, err error) {
	if from == "" || to == "" || strings.ContainsAny(from+to, "\r\n/@,") {
		return "", fmt.Errorf("amitest: start call %q -> %q: extensions must be non-empty without / @ , CR LF", from, to)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return "", ErrClosed
	}
	ctx := s.model.context
	o := &origination{
		dialString: "Local/" + from + "@" + ctx,
		app:        "Dial",
		data:       "Local/" + to + "@" + ctx,
		timeout:    s.cfg.OriginateTimeout,
	}
	s.placeOrigination(o)
	if o.leg == nil {
		return "", fmt.Errorf("amitest: start call %q -> %q: not placed", from, to)
	}
	return o.leg.one.linkedid, nil
}

// --- ChanSpy ----------------------------------------------------------

// spy is a running ChanSpy(prefix,opts).
type spy struct {
	ch      *channel
	prefix  string
	opts    string
	target  *channel
	pending bool // an attach is scheduled
	// hangup: a Hangup action asked for this spy while it listened; it
	// leaves, with hangupCause, when its target does (capture 19).
	hangup      bool
	hangupCause int
}

// requestHangup is a Hangup action on c. ChanSpy, while it listens, waits
// for frames on the supervisor's channel, and a Local channel carries
// none: Asterisk answers "Channel Hungup" but the supervisor only leaves
// when the target's call ends (capture 19). Anything else hangs up at once.
func (s *Server) requestHangup(c *channel, cause int) {
	if s.completeTransfer(c, cause) {
		return
	}
	if sp := c.spy; sp != nil && sp.target != nil {
		sp.hangup, sp.hangupCause = true, cause
		return
	}
	s.hangupCall(c, cause)
}

func (s *Server) startSpy(ch *channel, data string) {
	prefix, opts, _ := strings.Cut(data, ",")
	sp := &spy{ch: ch, prefix: prefix, opts: opts}
	ch.spy = sp
	s.model.spies = append(s.model.spies, sp)
	s.scheduleAttach(sp)
}

func (s *Server) removeSpy(sp *spy) {
	for i, x := range s.model.spies {
		if x == sp {
			s.model.spies = append(s.model.spies[:i], s.model.spies[i+1:]...)
			break
		}
	}
	sp.ch.spy = nil
}

// spyTarget is the first live, answered channel whose name starts with the
// spy's prefix, other than the spy's own pair (transcript 07).
func (s *Server) spyTarget(sp *spy) *channel {
	for _, c := range s.model.chans {
		if c.state == stateUp && c != sp.ch && c != sp.ch.partner && strings.HasPrefix(c.name, sp.prefix) {
			return c
		}
	}
	return nil
}

func (s *Server) scheduleAttach(sp *spy) {
	if sp.pending || sp.target != nil || sp.ch.gone {
		return
	}
	sp.pending = true
	s.sched.after(s.cfg.ChanSpyDelay, func() {
		sp.pending = false
		if sp.ch.gone || sp.target != nil {
			return
		}
		if t := s.spyTarget(sp); t != nil {
			sp.target = t
			s.emitSpy("ChanSpyStart", sp, t)
		}
	})
}

// spyKick lets idle spies look again after channels came up or went away:
// ChanSpy re-attaches to the next channel matching its prefix (08d).
func (s *Server) spyKick() {
	for _, sp := range s.model.spies {
		if sp.target == nil && !sp.pending && s.spyTarget(sp) != nil {
			s.scheduleAttach(sp)
		}
	}
}
