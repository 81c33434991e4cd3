package amitest

import (
	"strconv"
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// atxfer is an attended transfer in progress on its transferer's channel:
// the transfer feature heard "*2" and the extension, the transferer is
// on hold, and after the transfer digit timeout it consults target in a
// bridge of its own.
type atxfer struct {
	transferer *channel
	orig       *bridge // the bridge the transferer left, with the transferee
	consult    *bridge // the consultation bridge, once formed
	target     *leg
}

// --- BlindTransfer and Redirect (captures 12, 12b, 12d, 20f) -----------

func (c *session) actionBlindTransfer(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, exten, ctx := c.transferer(m)
	if ch == nil {
		return false
	}
	peer := peerOf(ch)
	if peer == nil {
		c.write(errorResponse(m, "Transfer invalid"))
		w := newEvent("BlindTransfer", "call,all").h("Result", "Invalid").channelBlock("Transferer", ch)
		s.emit(classCall, w.h("IsExternal", "Yes").h("Context", ctx).h("Extension", exten).done())
		return false
	}
	c.write(successResponse(m, "Transfer succeeded"))
	s.emitChan("Unhold", ch)
	w := newEvent("BlindTransfer", "call,all").h("Result", "Success").channelBlock("Transferer", ch).channelBlock("Transferee", peer)
	w.bridgeBlockPrefix("", ch.bridge)
	s.emit(classCall, w.h("IsExternal", "Yes").h("Context", ctx).h("Extension", exten).done())
	s.sendToDialplan(peer, ctx, exten)
	s.transfererLeaves(ch, true)
	return false
}

// transferer checks the headers of BlindTransfer and Atxfer in Asterisk's
// order and finds the channel that transfers, and the target's exten and
// context (by default the transferer's own, capture 12b2). When a check
// fails it has answered m and returns a nil channel. Callers hold s.mu.
func (c *session) transferer(m *ami.Message) (ch *channel, exten, ctx string) {
	if !c.require(m, "Channel", "No channel specified", "Exten", "No extension specified") {
		return nil, "", ""
	}
	if ch = c.srv.model.find(m.Get("Channel")); ch == nil {
		c.write(errorResponse(m, "Channel specified does not exist"))
		return nil, "", ""
	}
	exten, ctx = m.Get("Exten"), m.Get("Context")
	if ctx == "" {
		ctx = ch.context
	}
	return ch, exten, ctx
}

// sendToDialplan moves c out of its bridge to exten@ctx: it runs the
// extension's dialplan (Wait(600), the channel is up already) or, when
// there is no such extension, hangs up (README item 22).
func (s *Server) sendToDialplan(c *channel, ctx, exten string) {
	c.context, c.exten, c.priority = ctx, exten, 1
	if c.bridge != nil {
		s.leaveBridge(c)
	}
	// No longer the leg of its caller's Dial: a hangup of one is no
	// longer a hangup of the other.
	s.detachDial(c)
	if !s.extenExists(ctx, exten) {
		s.emitHangupRequest("SoftHangupRequest", c, causeNormal)
		s.hangupCall(c, causeNormal)
		return
	}
	c.priority, c.app, c.appData = 3, "Wait", "600"
}

// transferredAway reports a dialled channel a transfer sent into the
// dialplan on its own: a hangup of it starts with a SoftHangupRequest of
// its own (capture 20g), unlike a hangup of a bridged channel (08a).
func transferredAway(c *channel) bool {
	return c.half == 1 && c.bridge == nil && c.app == "Wait" && c.leg != nil && c.leg.caller == nil && c.leg.orig == nil && c.dialed == nil
}

// transfererLeaves ends the transferer after a transfer: out of its
// bridge, its Dial forgotten (the transferee is not hung up with it), then
// the hangup of its Local pair, which a blind transfer starts with a
// SoftHangupRequest (captures 12b, 20f) and a park does not (20v).
func (s *Server) transfererLeaves(ch *channel, soft bool) {
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	ch.dialed = nil
	ch.xfer = nil
	if soft {
		s.emitHangupRequest("SoftHangupRequest", ch, causeNormal)
	}
	s.hangupCall(ch, causeNormal)
}

// actionRedirect sends Channel (and ExtraChannel) to Context/Exten/
// Priority, checking its headers in Asterisk's order (capture 12d). A
// bridged channel leaves its bridge and its peer, left alone, hangs up
// (capture 12a).
func (c *session) actionRedirect(m *ami.Message) bool {
	s := c.srv
	name, ctx, exten, prio := m.Get("Channel"), m.Get("Context"), m.Get("Exten"), m.Get("Priority")
	extra := m.Get("ExtraChannel")
	if !c.require(m, "Channel", "Channel not specified", "Context", "Context not specified",
		"Exten", "Exten not specified", "Priority", "Priority not specified") {
		return false
	}
	if n, err := strconv.Atoi(strings.TrimSpace(prio)); err != nil || n < 1 {
		c.write(errorResponse(m, "Priority is invalid"))
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.model.find(name)
	if ch == nil {
		c.write(errorResponse(m, "Channel does not exist: "+name))
		return false
	}
	var ch2 *channel
	ctx2, exten2 := ctx, exten
	if extra != "" {
		if ch2 = s.model.find(extra); ch2 == nil {
			c.write(errorResponse(m, "ExtraChannel does not exist: "+extra))
			return false
		}
		if v := m.Get("ExtraContext"); v != "" {
			ctx2 = v
			if exten2 = m.Get("ExtraExten"); exten2 == "" {
				c.write(errorResponse(m, "ExtraExten not specified"))
				return false
			}
		}
		c.write(successResponse(m, "Dual Redirect successful"))
	} else {
		c.write(successResponse(m, "Redirect successful"))
	}
	peer := peerOf(ch)
	s.sendToDialplan(ch, ctx, exten)
	if ch2 != nil {
		s.sendToDialplan(ch2, ctx2, exten2)
	} else if peer != nil && !peer.gone && peer.bridge == nil {
		s.hangupCall(peer, causeNormal)
	}
	return false
}

// --- Atxfer and CancelAtxfer (captures 13, 13c-e, 20i-l) ---------------

// transferFeatures reports whether the bridge c is in lets c transfer: a
// channel that placed its call with Dial needs option T, one that was
// dialled needs t in its caller's Dial (Asterisk's bridge features).
func transferFeatures(c *channel) bool {
	opts := func(dialData string) string {
		parts := strings.SplitN(dialData, ",", 3)
		if len(parts) < 3 {
			return ""
		}
		return parts[2]
	}
	switch {
	case c.dialed != nil:
		return strings.Contains(opts(c.appData), "T")
	case c.leg != nil && c.leg.caller != nil && c == c.leg.one:
		return strings.Contains(opts(c.leg.dialData), "t")
	}
	return false
}

func (c *session) actionAtxfer(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, exten, ctx := c.transferer(m)
	if ch == nil {
		return false
	}
	if v, ok := ch.getVar("FEATUREMAP(atxfer)"); ok && v == "" {
		c.write(errorResponse(m, "No attended transfer feature code found"))
		return false
	}
	c.write(successResponse(m, "Atxfer successfully queued"))
	digits := "*2" + exten
	if !transferFeatures(ch) || ch.xfer != nil {
		// Nothing listens for the feature code: the digits are DTMF
		// to whoever is on the other end (capture 13d).
		s.leakDigits(ch, digits)
		return false
	}
	x := &atxfer{transferer: ch, orig: ch.bridge}
	ch.xfer = x
	for i, d := range digits {
		s.emitDTMF("DTMFEnd", ch, string(d), "Received", 0)
		if i == 1 {
			s.emitChan("Hold", ch)
		}
	}
	s.sched.after(s.cfg.TransferDigitTimeout, func() { s.consult(x, ctx, exten) })
	return false
}

// consult forms the consultation once the transfer digit timeout has
// passed: the target is dialled (no DialBegin: the feature dials it) and
// answers, and the transferer leaves the transferee's bridge for the
// consultation bridge. A target that does not exist aborts the transfer.
func (s *Server) consult(x *atxfer, ctx, exten string) {
	ch := x.transferer
	if ch.gone || ch.xfer != x {
		return
	}
	if !s.extenExists(ctx, exten) {
		ch.xfer = nil
		s.emitChan("Unhold", ch)
		return
	}
	l := s.newLeg(exten, ctx, [2]string{})
	l.one.linkedid, l.two.linkedid = ch.linkedid, ch.linkedid
	l.decided = true
	x.target = l
	s.emitChan("Newchannel", l.one)
	s.emitChan("Newchannel", l.two)
	b := s.createBridge("")
	x.consult = b
	s.emitLocalBridge(l)
	now := s.cfg.Now()
	two := l.two
	two.state, two.priority, two.app, two.appData, two.answered = stateUp, 2, "Answer", "", now
	s.emitChan("Newstate", two)
	s.sched.after(s.cfg.AnswerWait, func() {
		if !two.gone && two.priority == 2 {
			two.priority, two.app, two.appData = 3, "Wait", "600"
		}
	})
	s.enterBridge(b, l.one)
	l.one.state, l.one.answered = stateUp, now
	s.emitChan("Newstate", l.one)
	s.emitDial("DialEnd", nil, l.one, "DialStatus", "ANSWER")
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	s.enterBridge(b, ch)
}

func (c *session) actionCancelAtxfer(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Channel")
	if name == "" {
		c.write(errorResponse(m, "No channel specified"))
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.model.find(name)
	if ch == nil {
		c.write(errorResponse(m, "Channel specified does not exist"))
		return false
	}
	c.write(successResponse(m, "CancelAtxfer successfully queued"))
	x := ch.xfer
	if x == nil || !transferFeatures(ch) {
		s.leakDigits(ch, "*1") // no transfer to abort (capture 13c2)
		return false
	}
	for _, d := range "*1" {
		s.emitDTMF("DTMFEnd", ch, string(d), "Received", 0)
	}
	ch.xfer = nil
	if x.consult == nil {
		// Still collecting digits: the transfer ends before it dialled.
		s.emitChan("Unhold", ch)
		return false
	}
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	if x.orig != nil && s.model.findBridge(x.orig.id) != nil {
		s.enterBridge(x.orig, ch)
	}
	s.emitChan("Unhold", ch)
	if t := x.target.one; !t.gone {
		s.hangupCall(t, causeNormal)
	}
	return false
}

// completeTransfer is a hangup of a transferer in consultation: Asterisk
// joins the transferee and the target (AttendedTransfer) before the
// transferer goes (captures 13a2, 20l). It reports whether it applied.
func (s *Server) completeTransfer(ch *channel, cause int) bool {
	x := ch.xfer
	if x == nil || x.consult == nil || x.target == nil || x.target.one.gone || x.orig == nil || s.model.findBridge(x.orig.id) == nil {
		return false
	}
	target := x.target.one
	var transferee *channel // alone in the original bridge since the transferer left it
	if len(x.orig.members) > 0 {
		transferee = x.orig.members[0]
	}
	s.leaveBridge(target)
	s.enterBridge(x.orig, target)
	consult := x.consult
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	w := newEvent("AttendedTransfer", "call,all").h("Result", "Success")
	w.channelBlock("OrigTransferer", ch).bridgeBlockPrefix("Orig", x.orig)
	w.channelBlock("SecondTransferer", ch).bridgeBlockPrefix("Second", consult)
	if transferee != nil {
		w.channelBlock("Transferee", transferee)
	}
	w.channelBlock("TransferTarget", target)
	w.h("IsExternal", "No").h("DestType", "Bridge").h("DestBridgeUniqueid", x.orig.id)
	s.emit(classCall, w.done())
	if s.model.findBridge(consult.id) != nil {
		s.emitBridge("BridgeDestroy", consult, nil)
		s.model.removeBridge(consult)
	}
	if cause <= 0 {
		cause = causeNormal
	}
	ch.dialed, ch.xfer = nil, nil
	s.emitHangupRequest("SoftHangupRequest", ch, cause)
	s.hangupCall(ch, cause)
	return true
}

// leakDigits plays digits queued on c as if c's user pressed them with no
// feature listening: DTMFEnd on c, and the digit sent on to its bridge
// peer (captures 13d, 13c2).
func (s *Server) leakDigits(c *channel, digits string) {
	peer := peerOf(c)
	for _, d := range digits {
		digit := string(d)
		s.emitDTMF("DTMFEnd", c, digit, "Received", 0)
		if peer == nil {
			continue
		}
		s.emitDTMF("DTMFBegin", peer, digit, "Sent", -1)
		if peer.partner != nil {
			s.emitDTMF("DTMFBegin", peer.partner, digit, "Received", -1)
		}
		s.emitDTMF("DTMFEnd", peer, digit, "Sent", defaultDTMFMillis)
		if peer.partner != nil {
			s.emitDTMF("DTMFEnd", peer.partner, digit, "Received", defaultDTMFMillis)
		}
	}
}

// emitDTMF emits DTMFBegin (ms < 0: no DurationMs) or DTMFEnd.
func (s *Server) emitDTMF(name string, c *channel, digit, direction string, ms int) {
	w := newEvent(name, "dtmf,all").channelBlock("", c).h("Digit", digit)
	if ms >= 0 {
		w.hi("DurationMs", ms)
	}
	s.emit(classDTMF, w.h("Direction", direction).done())
}
