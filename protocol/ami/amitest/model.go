package amitest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// model is the fake PBX's state: live channels, bridges and spies. Every
// field is guarded by Server.mu.
type model struct {
	context        string
	seq            int // uniqueid counter, one for every channel (README §8)
	localSeq       int // the 8-hex counter shared by Local ;1/;2 names
	chans          []*channel
	bridges        []*bridge
	spies          []*spy
	processedCalls int
	queues         []*queue // queues.go
	parking        parking  // lots, spaces and their holding bridges (park.go)
}

func (m *model) init(ctx string) { m.context = ctx }

// channel is one Asterisk channel.
type channel struct {
	name, uniqueid, linkedid string
	state                    int
	cidNum, cidName          string
	connNum, connName        string
	context, exten           string
	priority                 int
	app, appData             string
	vars                     []ami.Header
	created, answered        time.Time

	leg     *leg
	partner *channel // the other half of a Local pair
	half    int      // 1 or 2
	bridge  *bridge
	dialed  *leg // the Dial leg this channel placed, if any
	// dialFailed is the Dial leg whose failure (busy, congestion) ended
	// this channel's Dial: its Cdr records name it (capture 18d/e).
	dialFailed *leg
	spy        *spy // the ChanSpy this channel runs, if any
	gone       bool

	mixmons []*mixmon // mixmonitor.go: its running recordings
	// Call control (callcontrol.go).
	xfer   *atxfer // the attended transfer this channel started, if any
	parked *parked // where this channel is parked, if it is
}

// ChannelInfo is a snapshot of one live channel.
type ChannelInfo struct {
	Name, Uniqueid, Linkedid string
	State                    string // Down, Ring, Ringing, Up, Busy
	CallerIDNum              string
	CallerIDName             string
	Context, Exten           string
	Priority                 int
	Application, Data        string
	BridgeID                 string
	Created                  time.Time
	Variables                map[string]string
}

func (c *channel) info() ChannelInfo {
	ci := ChannelInfo{
		Name: c.name, Uniqueid: c.uniqueid, Linkedid: c.linkedid, State: stateDesc(c.state),
		CallerIDNum: c.cidNum, CallerIDName: c.cidName, Context: c.context, Exten: c.exten,
		Priority: c.priority, Application: c.app, Data: c.appData, Created: c.created,
		Variables: map[string]string{},
	}
	if c.bridge != nil {
		ci.BridgeID = c.bridge.id
	}
	for _, v := range c.vars {
		ci.Variables[v.Key] = v.Value
	}
	return ci
}

func (c *channel) getVar(name string) (string, bool) {
	for _, v := range c.vars {
		if v.Key == name {
			return v.Value, true
		}
	}
	return "", false
}

func (c *channel) setVar(name, value string) {
	for i := range c.vars {
		if c.vars[i].Key == name {
			c.vars[i].Value = value
			return
		}
	}
	c.vars = append(c.vars, ami.Header{Key: name, Value: value})
}

// leg is a Local channel pair placed by Originate, StartCall or Dial: ;1
// is the outgoing side, ;2 runs the dialled extension.
type leg struct {
	one, two       *channel
	exten, context string
	orig           *origination // set for the leg an Originate placed
	caller         *channel     // set for a Dial leg: who dialled
	dialData       string       // the caller's Dial() argument
	timeout        time.Duration
	decided        bool
	failDisp       string // the Cdr disposition a failed Dial leg left its caller
}

// bridge is a basic two-party bridge, or a parking lot's holding bridge.
type bridge struct {
	id      string
	members []*channel
	lot     string // the parking lot whose holding bridge this is; it outlives its members
}

// createBridge makes a bridge (a parking lot's holding bridge when lot is
// set) and announces it with BridgeCreate. Callers hold s.mu.
func (s *Server) createBridge(lot string) *bridge {
	b := &bridge{id: newBridgeID(), lot: lot}
	s.model.bridges = append(s.model.bridges, b)
	s.emitBridge("BridgeCreate", b, nil)
	return b
}

func newBridgeID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (m *model) newUniqueid(now time.Time) string {
	id := fmt.Sprintf("%d.%d", now.Unix(), m.seq)
	m.seq++
	return id
}

func (m *model) add(c *channel) { m.chans = append(m.chans, c) }

func (m *model) remove(c *channel) {
	c.gone = true
	for i, x := range m.chans {
		if x == c {
			m.chans = append(m.chans[:i], m.chans[i+1:]...)
			break
		}
	}
}

// find looks a channel up by name (case-insensitive) or uniqueid, like
// ast_channel_get_by_name.
func (m *model) find(nameOrID string) *channel {
	for _, c := range m.chans {
		if strings.EqualFold(c.name, nameOrID) || c.uniqueid == nameOrID {
			return c
		}
	}
	return nil
}

func (m *model) uniqueidInUse(id string) bool {
	for _, c := range m.chans {
		if c.uniqueid == id {
			return true
		}
	}
	return false
}

// activeCalls counts live Local pairs, which is what Asterisk's "active
// calls" counts for these captures (4 Local channels, 2 active calls).
func (m *model) activeCalls() int {
	n := 0
	for _, c := range m.chans {
		if c.half == 1 {
			n++
		}
	}
	return n
}

func (m *model) findBridge(id string) *bridge {
	for _, b := range m.bridges {
		if b.id == id {
			return b
		}
	}
	return nil
}

func (m *model) removeBridge(b *bridge) {
	for i, x := range m.bridges {
		if x == b {
			m.bridges = append(m.bridges[:i], m.bridges[i+1:]...)
			return
		}
	}
}

// Channels returns a snapshot of the live channels, oldest first.
func (s *Server) Channels() []ChannelInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChannelInfo, 0, len(s.model.chans))
	for _, c := range s.model.chans {
		out = append(out, c.info())
	}
	return out
}

// --- events about channels -------------------------------------------

func (s *Server) emitChan(name string, c *channel, extra ...string) {
	w := newEvent(name, "call,all").channelBlock("", c)
	for i := 0; i+1 < len(extra); i += 2 {
		w.h(extra[i], extra[i+1])
	}
	s.emit(classCall, w.done())
}

func (s *Server) emitDial(name string, caller, dest *channel, extra ...string) {
	w := newEvent(name, "call,all")
	if caller != nil {
		w.channelBlock("", caller)
	}
	w.channelBlock("Dest", dest)
	for i := 0; i+1 < len(extra); i += 2 {
		w.h(extra[i], extra[i+1])
	}
	s.emit(classCall, w.done())
}

func (s *Server) emitLocalBridge(l *leg) {
	w := newEvent("LocalBridge", "call,all").channelBlock("LocalOne", l.one).channelBlock("LocalTwo", l.two)
	w.h("Context", l.context).h("Exten", l.exten).h("LocalOptimization", "Yes")
	s.emit(classCall, w.done())
}

func (s *Server) emitBridge(name string, b *bridge, c *channel) {
	w := newEvent(name, "call,all").bridgeBlock(b)
	if c != nil {
		w.channelBlock("", c)
	}
	s.emit(classCall, w.done())
}

func (s *Server) emitHangupRequest(name string, c *channel, cause int) {
	s.emitChan(name, c, "Cause", fmt.Sprint(cause))
}

func (s *Server) emitSpy(name string, sp *spy, target *channel) {
	w := newEvent(name, "call,all").channelBlock("Spyer", sp.ch).channelBlock("Spyee", target)
	s.emit(classCall, w.done())
}

func (s *Server) emitVarSet(c *channel, name, value string) {
	s.emit(classDialplan, newEvent("VarSet", "dialplan,all").channelBlock("", c).h("Variable", name).h("Value", value).done())
}

// hangupChannel ends one channel: ChanSpyStop for whoever spied on it (or
// whom it spied on), then Hangup with its cause, then it leaves the model.
func (s *Server) hangupChannel(c *channel, cause int) {
	if c.gone {
		return
	}
	s.queueChannelGone(c)
	var leaving []*spy // asked to hang up while they listened to c
	for _, sp := range s.model.spies {
		if sp.target == c {
			s.emitSpy("ChanSpyStop", sp, c)
			sp.target = nil
			if sp.hangup {
				leaving = append(leaving, sp)
			}
		}
	}
	if sp := c.spy; sp != nil {
		if sp.target != nil {
			s.emitSpy("ChanSpyStop", sp, sp.target)
			sp.target = nil
		}
		s.removeSpy(sp)
	}
	if b := c.bridge; b != nil {
		s.leaveBridge(c)
	}
	s.emitChan("Hangup", c, "Cause", fmt.Sprint(cause), "Cause-txt", causeTxt(cause))
	s.model.remove(c)
	for _, sp := range leaving {
		if !sp.ch.gone {
			s.hangupCall(sp.ch, sp.hangupCause)
		}
	}
	s.spyKick()
}

func (s *Server) leaveBridge(c *channel) {
	b := c.bridge
	if b == nil {
		return
	}
	for i, x := range b.members {
		if x == c {
			b.members = append(b.members[:i], b.members[i+1:]...)
			break
		}
	}
	c.bridge = nil
	s.emitBridge("BridgeLeave", b, c)
	if len(b.members) == 0 && b.lot == "" {
		s.emitBridge("BridgeDestroy", b, nil)
		s.model.removeBridge(b)
	}
}

func (s *Server) enterBridge(b *bridge, c *channel) {
	b.members = append(b.members, c)
	c.bridge = b
	s.emitBridge("BridgeEnter", b, c)
}

// cdr emits the Cdr event of one channel. dest is the DestinationChannel
// of the second record a Dial caller gets; end is when the record ends.
func (s *Server) cdr(c *channel, disposition string, dest *channel, end time.Time) {
	w := newEvent("Cdr", "cdr,all")
	w.h("AccountCode", "")
	w.h("Source", c.cidNum)
	destExten, destCtx := c.exten, c.context
	if c.leg != nil {
		destExten, destCtx = c.leg.exten, c.leg.context
	}
	w.h("Destination", destExten).h("DestinationContext", destCtx)
	w.h("CallerID", fmt.Sprintf("%q <%s>", c.cidName, c.cidNum))
	w.h("Channel", c.name)
	if dest != nil {
		w.h("DestinationChannel", dest.name)
	} else {
		w.h("DestinationChannel", "")
	}
	w.h("LastApplication", c.app).h("LastData", c.appData)
	w.h("StartTime", cdrTime(c.created))
	billable := 0
	if c.answered.IsZero() {
		w.h("AnswerTime", "")
	} else {
		w.h("AnswerTime", cdrTime(c.answered))
		billable = int(end.Sub(c.answered).Seconds())
	}
	w.h("EndTime", cdrTime(end))
	w.hi("Duration", int(end.Sub(c.created).Seconds()))
	w.hi("BillableSeconds", billable)
	w.h("Disposition", disposition)
	w.h("AMAFlags", "DOCUMENTATION")
	w.h("UniqueID", c.uniqueid)
	w.h("UserField", "")
	s.emit(classCDR, w.done())
}

func cdrTime(t time.Time) string { return t.Format("2006-01-02 15:04:05") }

// component is every channel that goes down with c: its Local partner,
// its bridge peers and the Dial legs it placed or was placed by, c first.
// ChanSpy targets are not part of it.
func (s *Server) component(c *channel) []*channel {
	seen := map[*channel]bool{}
	var out []*channel
	var walk func(x *channel)
	walk = func(x *channel) {
		if x == nil || x.gone || seen[x] {
			return
		}
		seen[x] = true
		out = append(out, x)
		walk(x.partner)
		if x.bridge != nil {
			for _, y := range x.bridge.members {
				walk(y)
			}
		}
		if x.dialed != nil {
			walk(x.dialed.one)
		}
		if x.leg != nil && x.leg.caller != nil {
			walk(x.leg.caller)
		}
	}
	walk(c)
	return out
}

// hangupCall hangs up x (the channel a Hangup action or the remote party
// targeted) and everything connected to it, in the order of transcript
// 08: bridges first, the HangupRequest of the Local partners, their
// SoftHangupRequest and Hangup, x last, and the Cdr records. A cause <= 0
// means none was given: Normal Clearing for a bridged call, else Unknown
// (transcript 08h).
func (s *Server) hangupCall(x *channel, cause int) {
	s.queueChannelGone(x) // first: who hung up decides AgentComplete's Reason
	comp := s.component(x)
	bridged := false
	for _, c := range comp {
		if c.bridge != nil {
			bridged = true
		}
	}
	if cause <= 0 {
		cause = causeUnknown
		if bridged {
			cause = causeNormal
		}
	}
	now := s.cfg.Now()
	for _, c := range comp {
		if l := c.leg; l != nil && l.caller != nil && !l.decided && c == l.one {
			// The caller gave up while the Dial was still ringing.
			s.emitDial("DialEnd", l.caller, c, "DialStatus", "CANCEL")
		}
	}
	for _, c := range comp {
		if l := c.leg; l != nil {
			l.decided = true
			if l.orig != nil && !l.orig.finished {
				// Hung up before it answered: the originator hears of it.
				s.finish(l.orig, origResult{reason: reasonHangup})
			}
		}
	}
	for _, c := range comp {
		if c.bridge != nil {
			s.leaveBridge(c)
		}
	}
	for _, c := range comp[1:] {
		if c.half == 2 {
			s.emitHangupRequest("HangupRequest", c, cause)
		}
	}
	for _, c := range comp[1:] {
		if c.half == 2 {
			s.emitHangupRequest("SoftHangupRequest", c, causeNormal)
		}
		s.hangupChannel(c, cause)
		s.channelCDR(c, now)
	}
	if transferredAway(x) {
		s.emitHangupRequest("SoftHangupRequest", x, cause)
	}
	s.hangupChannel(x, cause)
	s.channelCDR(x, now)
}

// channelCDR writes the Cdr records of a channel that ended normally. The
// outgoing half of a Dial leg has none of its own: its caller's second
// record (with DestinationChannel) covers it, as in transcript 08.
func (s *Server) channelCDR(c *channel, end time.Time) {
	if c.leg != nil && c.leg.caller != nil && c.half == 1 {
		return
	}
	disp := "ANSWERED"
	if c.answered.IsZero() {
		disp = "NO ANSWER"
	}
	if f := c.dialFailed; f != nil && !c.answered.IsZero() {
		// Dial returned busy or congestion: the caller's own record,
		// then one with the failure and the leg it dialled (18d/e).
		s.cdr(c, disp, nil, c.answered)
		s.cdr(c, f.failDisp, f.one, end)
		return
	}
	if d := c.dialed; d != nil && !c.answered.IsZero() {
		s.cdr(c, disp, nil, c.answered)
		// Hung up while the Dial still rang: NO ANSWER, naming the
		// dialled leg (18g).
		second := disp
		if d.one.answered.IsZero() {
			second = "NO ANSWER"
		}
		s.cdr(c, second, d.one, end)
		return
	}
	s.cdr(c, disp, nil, end)
}

// Hangup hangs up a channel (by name or uniqueid) and its call as if the
// remote party did, with the given Q.850 cause (<= 0: Asterisk's default).
// It takes effect at once, even on a listening ChanSpy, which the Hangup
// action only ends when its target goes (capture 19).
func (s *Server) Hangup(channelOrUniqueid string, cause int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return ErrClosed
	}
	c := s.model.find(channelOrUniqueid)
	if c == nil {
		return fmt.Errorf("hangup %q: %w", channelOrUniqueid, ErrNoSuchChannel)
	}
	s.hangupCall(c, cause)
	return nil
}
