package calls

import (
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// phase is how far a call's emitted lifecycle has gone; events only move
// it forward, which is what keeps them causal and at most once.
type phase int

const (
	phaseNone phase = iota
	phaseStarted
	phaseRinging
	phaseAnswered
	phaseBridged
	phaseEnded
)

// stage says, for an originated call, whose ringing and answer count.
// Originate first rings its own channel (Local/<from>); in a click-to-call
// (Application Dial) that channel is the agent's own phone and the call is
// answered when the dialled party answers (stageTwo). With any other
// application (Wait, ChanSpy, Playback) the originated channel is the far
// end itself (stageSingle). Until it is known, the first leg's ringing and
// answer are held back.
type stage int

const (
	stageUnknown stage = iota
	stageSingle
	stageTwo
)

type endKind int

const (
	endNormal endKind = iota
	endReconnect
	endEvicted
)

type call struct {
	id          string
	seq         uint64
	direction   string
	from, to    string
	fromGuessed bool // from is the channel's name, not a caller id
	hinted      bool // from and to came from the agent's expectation
	monitor     bool // the agent's own supervisor call (ChanSpy)
	channel     string
	originate   bool
	stage       stage
	first       *leg
	legs        []*leg
	partyEver   bool
	// front: the originated channel is a Local channel whose dialplan
	// answered and then rang others (a queue's operators, an IVR's
	// target): the call is answered by whoever of them it connects.
	front bool
	// app is the application an Originate ran on the first leg, from its
	// OriginateResponse ("Dial", "Wait", "ChanSpy"…).
	app string
	// dialplanAnswer holds the answer of a Local channel originated into
	// an application such as Wait (how a CRM or a test puts a caller into
	// a queue) that its own dialplan answered while it had dialled nobody:
	// a phone of the lab, or a queue or IVR about to ring people (Answer()
	// before Queue()). It is emitted when the call ends, and dropped when
	// the dialplan rings someone (front). A supervisor's ChanSpy call is
	// never held: its dialplan is the supervisor's phone.
	dialplanAnswer time.Time

	phase  phase
	status string

	startedAt  time.Time
	answeredAt time.Time
	firstUpAt  time.Time
	answered   *leg
	pendRing   time.Time // held-back first-leg facts (stageUnknown)
	pendAnswer time.Time

	evidence evidence
	hangupBy *leg
	// apiHangupBy requested a hangup of this call at apiHangupAt
	// (ExpectHangup).
	apiHangupBy    string
	apiHangupAt    time.Time
	firstHangingUp bool
	lastCause      int
	lastCauseText  string

	awaitKey   string // dial string while waiting for OriginateResponse
	origFailed bool
	spies      []spyPair

	unsynced bool
	ended    bool
	dropped  bool

	cc ccCall // transfers and parking (callcontrol.go)
}

// evidence is the latest fact that says how an unanswered call ended.
type evidence struct {
	status string
	cause  int
	leg    *leg
}

type spyPair struct{ spy, target string }

// leg is one party of a call: a channel, or both halves of a Local pair.
type leg struct {
	call    *call
	name    string // ";1" half for a Local pair
	base    string
	who     string
	first   bool
	local   bool // a Local channel pair: a link, not a party
	chans   []*channel
	bridges []string
	up      bool
	dialing bool // one of its channels placed a Dial (DialBegin)
	// refused: the Dial that rang it ended busy, congested, unanswered or
	// unavailable; its channels may still be going away, but it is no
	// longer a party the caller could be giving up on.
	refused   bool
	cause     int
	causeText string
	cdrBill   int
	haveCdr   bool
	goneAt    time.Time
	// handedOver: the leg transferred or parked the call and left it to
	// others; its hangup is not the call's end (callcontrol.go).
	handedOver bool
}

func (l *leg) gone() bool {
	if len(l.chans) == 0 {
		return false
	}
	for _, ch := range l.chans {
		if !ch.gone {
			return false
		}
	}
	return true
}

type channel struct {
	uid   string
	name  string
	leg   *leg
	local bool
	state int
	gone  bool
}

func (t *Tracker) newCall(id string, now time.Time) *call {
	c := &call{id: id, seq: t.nextSeq, startedAt: now, phase: phaseNone}
	t.nextSeq++
	t.calls[id] = c
	t.created = append(t.created, c)
	t.live++
	return c
}

// attach adds channel uid to call c, as a new leg or as the second half of
// a Local pair already there. It returns nil when c has too many legs.
func (t *Tracker) attach(c *call, uid, name string, now time.Time) *leg {
	base, half, local := localBase(name)
	var l *leg
	if local {
		for _, x := range c.legs {
			if x.base == base {
				l = x
				break
			}
		}
	}
	if l == nil {
		if len(c.legs) >= t.cfg.MaxLegsPerCall {
			return nil
		}
		l = &leg{call: c, name: name, base: base, who: extOf(name), local: local}
		c.legs = append(c.legs, l)
		if c.first == nil {
			l.first = true
			c.first = l
		} else {
			t.partyAppeared(c, l)
		}
	} else if half == 1 {
		l.name = name
	}
	ch := &channel{uid: uid, name: name, leg: l, local: local}
	l.chans = append(l.chans, ch)
	t.chans[uid] = ch
	return l
}

func (t *Tracker) partyAppeared(c *call, l *leg) {
	c.partyEver = true
	if c.originate && c.stage == stageUnknown {
		t.resolve(c, stageTwo)
	}
	if c.to == "" && !c.front {
		c.to = l.who
	}
}

// startCall fills in a new call from its first channel and emits
// call.started. hint stands in for an expectation when the agent gave none
// (Resync knows what an adopted call dials).
func (t *Tracker) startCall(c *call, l *leg, state int, callerID, exten string, now time.Time, hint *expectation) {
	c.channel = l.name
	exp := t.takeExpectation(c.id, now)
	if exp == nil {
		exp = hint
	}
	if state == stateDown || exp != nil {
		c.originate = true
		c.direction = DirectionOriginate
		c.from = extOf(l.name)
		c.status = protocol.CallQueued
		c.awaitKey = dialStringOf(l.name)
		t.awaiting[c.awaitKey] = append(t.awaiting[c.awaitKey], c)
	} else {
		c.from = callerID
		if c.from == "" {
			c.from, c.fromGuessed = extOf(l.name), true
		}
		c.to = exten
		c.direction = t.direction(l.name, exten)
		c.status = protocol.CallRinging
	}
	if exp != nil {
		c.direction = DirectionOriginate
		c.hinted = true
		if exp.from != "" {
			c.from = exp.from
		}
		if exp.to != "" {
			c.to = exp.to
		}
		if exp.monitor != "" {
			c.to, c.monitor = exp.monitor, true
		}
	}
	c.phase = phaseStarted
	t.out = append(t.out, t.event(c, protocol.EventCallStarted, now))
	if exp != nil {
		t.applyExpectation(c, exp)
	}
}

// direction classifies a call nobody originated: a caller whose channel is
// not an extension is a trunk (inbound); an extension calling an extension
// is internal; an extension calling anything else is outbound.
func (t *Tracker) direction(callerChannel, dialled string) string {
	switch {
	case !isExtension(extOf(callerChannel), t.cfg.ExtensionMaxDigits):
		return DirectionInbound
	case isExtension(dialled, t.cfg.ExtensionMaxDigits):
		return DirectionInternal
	default:
		return DirectionOutbound
	}
}

// isTarget reports whether l's ringing and answer are the call's.
func (t *Tracker) isTarget(l *leg) bool {
	c := l.call
	if !c.originate {
		return !l.first
	}
	switch c.stage {
	case stageTwo:
		return !l.first
	case stageSingle:
		return l.first != c.front
	}
	return false
}

func (t *Tracker) held(l *leg) bool {
	return l.first && l.call.originate && l.call.stage == stageUnknown
}

func (t *Tracker) ringing(l *leg) {
	c := l.call
	if c.ended {
		return
	}
	if t.held(l) {
		if c.pendRing.IsZero() {
			c.pendRing = t.clockNow
		}
		return
	}
	if t.isTarget(l) {
		t.emitRinging(c, t.clockNow)
	}
}

func (t *Tracker) up(l *leg, at time.Time) {
	c := l.call
	if c.front && !l.first {
		// Only the front's DialEnd ANSWER says which of the people it
		// rang took the call: with ringall, a losing operator's Local
		// ";2" half goes Up too (capture 14b).
		return
	}
	l.up = true
	if c.ended {
		return
	}
	if l.first && c.firstUpAt.IsZero() {
		c.firstUpAt = at
	}
	if t.held(l) {
		if c.pendAnswer.IsZero() {
			c.pendAnswer = at
		}
		return
	}
	if t.isTarget(l) {
		t.answer(c, l, at)
	}
}

// answer emits call.answered for l, unless l is the originated Local
// channel and its own dialplan answered it before it dialled anyone: that
// answer is held (call.dialplanAnswer).
func (t *Tracker) answer(c *call, l *leg, at time.Time) {
	if l.first && l.local && c.originate && c.stage == stageSingle && !l.dialing && !c.front &&
		!strings.EqualFold(c.app, "ChanSpy") && !c.monitor {
		if c.dialplanAnswer.IsZero() {
			c.dialplanAnswer = at
		}
		return
	}
	t.emitAnswered(c, l, at)
}

// releaseDialplanAnswer emits a held dialplan answer: the call ended
// without the dialplan ringing anyone, so the originated channel was the
// far end. (Once it rang someone the hold is dropped: a caller who gives up
// while the operators ring is a canceled call, not one the queue answered.)
func (t *Tracker) releaseDialplanAnswer(c *call) {
	at := c.dialplanAnswer
	if at.IsZero() || c.ended {
		return
	}
	c.dialplanAnswer = time.Time{}
	t.emitAnswered(c, c.first, at)
}

// becomeFront: the originated Local channel's dialplan, having answered,
// rings someone: it is a queue or an IVR in front of the people who
// answer. Its held answer was the PBX's; the call is answered when one of
// those it rang is connected, and it was a call to the front's extension
// from the caller id the dialplan dials with.
func (t *Tracker) becomeFront(c *call, callerID string) {
	if c.front || c.phase >= phaseAnswered || c.stage != stageSingle || !c.first.local {
		return
	}
	c.front = true
	if !c.hinted {
		c.to = c.first.who
		if callerID != "" {
			c.from, c.fromGuessed = callerID, false
		}
	}
}

// resolve fixes an originated call's stage; held first-leg facts are
// emitted (single) or dropped (two: that was the agent's own phone).
func (t *Tracker) resolve(c *call, s stage) {
	if !c.originate || c.stage != stageUnknown || c.ended {
		return
	}
	c.stage = s
	ring, ans := c.pendRing, c.pendAnswer
	c.pendRing, c.pendAnswer = time.Time{}, time.Time{}
	if s != stageSingle {
		return
	}
	if !ring.IsZero() {
		t.emitRinging(c, ring)
	}
	if !ans.IsZero() {
		t.answer(c, c.first, ans)
	}
}

func (t *Tracker) setEvidence(c *call, ev evidence) {
	if c.ended || c.phase >= phaseAnswered || c.evidence.status == protocol.CallCanceled {
		return
	}
	c.evidence = ev
}

// hangupStarted records the first sign of a leg going away: who hung up,
// and whether the caller gave up while the far end was still alive.
func (t *Tracker) hangupStarted(l *leg) {
	c := l.call
	if l.first {
		c.firstHangingUp = true
	}
	if c.ended {
		return
	}
	// Legs that never answered (queue members rung in parallel, cancelled
	// when another answered) did not hang up the conversation.
	if c.hangupBy == nil && (l.up || l.first) && !l.handedOver {
		c.hangupBy = l
	}
	if l.first && c.phase < phaseAnswered && (!c.originate || c.stage == stageTwo) && t.targetAlive(c) {
		t.setEvidence(c, evidence{protocol.CallCanceled, causeUnknown, l})
	}
}

// legGone is called when the last channel of l hung up. If l was taken
// for the one who hung up but two real parties are still connected
// (through bridges, Local pairs being mere links), l only left a
// conversation that goes on — an operator completing a transfer — and the
// next leg to hang up is the one that ends it.
func (t *Tracker) legGone(l *leg) {
	l.goneAt = t.clockNow
	for len(l.bridges) > 0 {
		t.leaveBridge(l, l.bridges[0])
	}
	if c := l.call; !c.ended && c.hangupBy == l && t.connected(c) {
		c.hangupBy = nil
	}
}

// connected reports whether some bridge path joins two non-Local legs of c.
func (t *Tracker) connected(c *call) bool {
	seen := make(map[*leg]bool, len(c.legs))
	for _, start := range c.legs {
		if seen[start] || start.gone() || len(start.bridges) == 0 {
			continue
		}
		real := 0
		queue := []*leg{start}
		seen[start] = true
		for len(queue) > 0 {
			l := queue[0]
			queue = queue[1:]
			if !l.local {
				real++
			}
			for _, bid := range l.bridges {
				for _, x := range t.bridges[bid] {
					if !seen[x] && x.call == c && !x.gone() {
						seen[x] = true
						queue = append(queue, x)
					}
				}
			}
		}
		if real >= 2 {
			return true
		}
	}
	return false
}

func (t *Tracker) targetAlive(c *call) bool {
	for _, l := range c.legs {
		if t.isTarget(l) && !l.gone() && !l.refused {
			return true
		}
	}
	return false
}

func (t *Tracker) enterBridge(l *leg, bid string) {
	list := t.bridges[bid]
	for _, x := range list {
		if x == l {
			return
		}
	}
	t.bridges[bid] = append(list, l)
	l.bridges = append(l.bridges, bid)
	c := l.call
	if c.ended {
		return
	}
	for _, x := range list {
		if x.call != c || x == l {
			continue
		}
		// Two parties of one call share a bridge: the far end has answered
		// even if its answer event was lost or is still to come.
		if c.phase < phaseAnswered {
			target := l
			if !t.isTarget(l) {
				target = x
			}
			if c.front && !target.first {
				target.up = true
				t.emitAnswered(c, target, t.clockNow)
			} else {
				t.up(target, t.clockNow)
			}
		}
		t.emitBridged(c, t.clockNow)
		return
	}
}

func (t *Tracker) leaveBridge(l *leg, bid string) {
	for i, b := range l.bridges {
		if b == bid {
			l.bridges = append(l.bridges[:i], l.bridges[i+1:]...)
			break
		}
	}
	list := t.bridges[bid]
	for i, x := range list {
		if x == l {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.bridges, bid)
	} else {
		t.bridges[bid] = list
	}
}

// moveLeg follows Asterisk's linkedid propagation: when a leg shows up
// with another call's linkedid (a transfer or bridge joined it to an older
// call), it leaves its old call, which ends if nothing is left of it.
func (t *Tracker) moveLeg(l *leg, linked string) {
	oc, nc := l.call, t.calls[linked]
	if nc == nil || nc == oc || nc.ended || oc.ended || len(nc.legs) >= t.cfg.MaxLegsPerCall {
		return
	}
	for i, x := range oc.legs {
		if x == l {
			oc.legs = append(oc.legs[:i], oc.legs[i+1:]...)
			break
		}
	}
	l.call, l.first = nc, false
	nc.legs = append(nc.legs, l)
	t.partyAppeared(nc, l)
	t.checkEnd(oc)
}

// checkEnd ends c once every leg is gone, or once Asterisk has reported
// the originate failed and the originated channel itself is gone (its
// Local ";2" half may linger in the dialplan a little longer).
func (t *Tracker) checkEnd(c *call) {
	if c.ended {
		return
	}
	if c.origFailed {
		if ch := t.chans[c.id]; ch != nil && ch.gone && ch.leg == c.first {
			t.finish(c, endNormal)
			return
		}
	}
	for _, l := range c.legs {
		if !l.gone() {
			return
		}
	}
	t.finish(c, endNormal)
}

func (t *Tracker) finish(c *call, kind endKind) {
	now := t.clockNow
	for _, s := range c.spies {
		t.emitMonitorStopped(c, s, now)
	}
	c.spies = nil
	if kind == endNormal {
		t.resolve(c, stageSingle)
	}
	t.releaseDialplanAnswer(c)
	status := t.finalStatus(c, kind)
	byAPI := c.apiHangupBy != "" && kind == endNormal && now.Sub(c.apiHangupAt) <= apiHangupWindow
	if byAPI {
		status = protocol.CallCanceled
		if c.phase >= phaseAnswered {
			status = protocol.CallCompleted
		}
	}
	cause, text := t.finalCause(c, status, kind)
	c.status = status
	c.phase = phaseEnded
	c.ended = true
	t.live--
	t.endedQ = append(t.endedQ, c)

	e := t.event(c, protocol.EventCallEnded, now)
	t.withAnswer(c, &e)
	e.EndedAt = timePtr(now)
	e.Cause, e.CauseText = cause, text
	switch {
	case byAPI:
		e.HungupBy = c.apiHangupBy
	case (status == protocol.CallCompleted || status == protocol.CallCanceled) && c.hangupBy != nil:
		e.HungupBy = t.whoOf(c, c.hangupBy)
	}
	e.DurationS = seconds(now.Sub(c.startedAt))
	if status == protocol.CallCompleted {
		e.BillsecS = t.billsec(c, now)
	}
	t.out = append(t.out, e)
}

func (t *Tracker) finalStatus(c *call, kind endKind) string {
	switch {
	case c.phase >= phaseAnswered:
		return protocol.CallCompleted
	case c.evidence.status != "":
		return c.evidence.status
	case kind != endNormal:
		return protocol.CallFailed
	case c.partyEver:
		return protocol.CallCanceled // the far end was rung and the caller left
	case !c.originate && !c.firstUpAt.IsZero():
		return protocol.CallCompleted // answered by the PBX itself (IVR, voicemail)
	case !c.originate:
		return protocol.CallCanceled
	}
	return protocol.CallFailed
}

// finalCause takes the cause from the Hangup of the leg that decided the
// outcome; when Asterisk gave none (Local channels often say 0), the cause
// the outcome itself implies.
func (t *Tracker) finalCause(c *call, status string, kind endKind) (int, string) {
	switch kind {
	case endReconnect:
		return causeUnknown, causeTextReconnect
	case endEvicted:
		return causeUnknown, causeTextEvicted
	}
	of := func(l *leg) (int, string, bool) {
		if l != nil && l.cause != 0 {
			return l.cause, l.causeText, true
		}
		return 0, "", false
	}
	var order []*leg
	fallback := causeUnknown
	switch status {
	case protocol.CallCompleted:
		order = []*leg{c.answered, c.hangupBy}
		fallback = causeNormalClearing
	case protocol.CallCanceled:
		order = []*leg{c.first}
		fallback = causeNormalClearing
	default:
		order = []*leg{c.evidence.leg}
		fallback = c.evidence.cause
		if code, text, ok := of(c.evidence.leg); ok {
			return code, text
		}
		if fallback != causeUnknown {
			return fallback, causeText(fallback)
		}
	}
	for _, l := range order {
		if code, text, ok := of(l); ok {
			return code, text
		}
	}
	if c.lastCause != 0 {
		return c.lastCause, c.lastCauseText
	}
	return fallback, causeText(fallback)
}

// billsec prefers Asterisk's own CDR figure for the answered leg when that
// leg lasted to the end of the call; after a transfer it would only cover
// the first operator, so the tracker's clock is used instead.
func (t *Tracker) billsec(c *call, end time.Time) int {
	a := c.answered
	if a != nil && a.haveCdr && !a.goneAt.IsZero() && end.Sub(a.goneAt) < time.Second {
		return a.cdrBill
	}
	switch {
	case !c.answeredAt.IsZero():
		return seconds(end.Sub(c.answeredAt))
	case !c.firstUpAt.IsZero():
		return seconds(end.Sub(c.firstUpAt))
	}
	return 0
}

func (t *Tracker) whoOf(c *call, l *leg) string {
	if l == c.first {
		return c.from
	}
	return l.who
}

func (t *Tracker) event(c *call, typ string, at time.Time) protocol.Event {
	return protocol.Event{
		Type:      typ,
		Time:      at,
		CallID:    c.id,
		LinkedID:  c.id,
		Direction: c.direction,
		From:      c.from,
		To:        c.to,
		Status:    c.status,
		Channel:   c.channel,
	}
}

func (t *Tracker) withAnswer(c *call, e *protocol.Event) {
	if c.answered == nil {
		return
	}
	e.AnsweredAt = timePtr(c.answeredAt)
	e.AnsweredBy = t.whoOf(c, c.answered)
	e.AnsweredChannel = c.answered.name
}

func (t *Tracker) emitRinging(c *call, at time.Time) {
	if c.ended || c.phase >= phaseRinging {
		return
	}
	c.phase, c.status = phaseRinging, protocol.CallRinging
	t.out = append(t.out, t.event(c, protocol.EventCallRinging, at))
}

func (t *Tracker) emitAnswered(c *call, l *leg, at time.Time) {
	if c.ended || c.phase >= phaseAnswered {
		return
	}
	c.phase, c.status = phaseAnswered, protocol.CallInProgress
	c.answered, c.answeredAt = l, at
	e := t.event(c, protocol.EventCallAnswered, at)
	t.withAnswer(c, &e)
	t.out = append(t.out, e)
}

func (t *Tracker) emitBridged(c *call, at time.Time) {
	if c.ended || c.phase >= phaseBridged || c.phase < phaseAnswered {
		return
	}
	c.phase = phaseBridged
	e := t.event(c, protocol.EventCallBridged, at)
	t.withAnswer(c, &e)
	t.out = append(t.out, e)
}

func (t *Tracker) emitMonitorStopped(c *call, s spyPair, at time.Time) {
	e := t.event(c, protocol.EventMonitorStopped, at)
	e.SpyChannel, e.TargetChannel = s.spy, s.target
	t.out = append(t.out, e)
}

func timePtr(t time.Time) *time.Time { return &t }

// seconds truncates like Asterisk's CDR duration and billsec.
func seconds(d time.Duration) int {
	if d < 0 {
		return 0
	}
	return int(d / time.Second)
}
