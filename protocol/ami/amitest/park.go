package amitest

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// parkDialContext is where res_parking dials a timed-out call's parker.
const parkDialContext = "park-dial"

// lot is one parking lot of res_parking.conf.
type lot struct {
	name        string
	start, stop int
	timeout     time.Duration
	holding     *bridge // created at the lot's first use, never destroyed
}

// parked is a channel in a parking space.
type parked struct {
	lot     *lot
	space   int
	ch      *channel
	parker  string // ParkerDialString: who is called back on timeout
	at      time.Time
	timeout time.Duration
}

// parking is the lab's res_parking.conf: the built-in lot default (700,
// 701-750, 45 s) and operators (900, 901-920, 60 s), both calling the
// parker back on timeout.
type parking struct {
	lots   []*lot
	spaces []*parked
}

func (p *parking) all() []*lot {
	if p.lots == nil {
		p.lots = []*lot{
			{name: "default", start: 701, stop: 750, timeout: 45 * time.Second},
			{name: "operators", start: 901, stop: 920, timeout: 60 * time.Second},
		}
	}
	return p.lots
}

func (p *parking) find(name string) *lot {
	for _, l := range p.all() {
		if strings.EqualFold(l.name, name) {
			return l
		}
	}
	return nil
}

// space returns the call parked in lot/space, or nil.
func (p *parking) space(l *lot, space int) *parked {
	for _, x := range p.spaces {
		if x.lot == l && x.space == space {
			return x
		}
	}
	return nil
}

// free picks space want if it is free, else the first free one (a taken
// ParkingSpace silently gives the next free one: capture 16c10).
func (p *parking) free(l *lot, want int) int {
	if want >= l.start && want <= l.stop && p.space(l, want) == nil {
		return want
	}
	for n := l.start; n <= l.stop; n++ {
		if p.space(l, n) == nil {
			return n
		}
	}
	return 0
}

func (p *parking) remove(x *parked) {
	for i, y := range p.spaces {
		if y == x {
			p.spaces = append(p.spaces[:i], p.spaces[i+1:]...)
			break
		}
	}
	x.ch.parked = nil
}

func (c *session) actionParkinglots(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	lots := s.model.parking.all()
	c.write(response("Success", m).h("EventList", "start").h("Message", "Parking lots will follow").done())
	for _, l := range lots {
		w := newEvent("Parkinglot", "").actionID(m).h("Name", l.name)
		w.hi("StartSpace", l.start).hi("StopSpace", l.stop).hi("Timeout", int(l.timeout/time.Second))
		c.write(w.done())
	}
	c.write(newEvent("ParkinglotsComplete", "").actionID(m).h("EventList", "Complete").hi("ListItems", len(lots)).done())
	return false
}

func (c *session) actionParkedCalls(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.model.parking
	var only *lot
	if name := m.Get("ParkingLot"); name != "" {
		if only = p.find(name); only == nil {
			c.write(errorResponse(m, "Requested parking lot could not be found."))
			return false
		}
	}
	c.write(response("Success", m).h("EventList", "start").h("Message", "Parked calls will follow").done())
	n := 0
	for _, l := range p.all() {
		if only != nil && l != only {
			continue
		}
		for _, x := range p.spaces {
			if x.lot == l {
				c.write(s.parkedEvent("ParkedCall", "", x).actionID(m).done())
				n++
			}
		}
	}
	c.write(newEvent("ParkedCallsComplete", "").actionID(m).h("EventList", "Complete").hi("ListItems", n).hi("Total", n).done())
	return false
}

// parkedEvent is the Parkee block and parking facts of ParkedCall,
// UnParkedCall and ParkedCallTimeOut; retriever, when set, is added.
func (s *Server) parkedEvent(name, privilege string, x *parked, retriever ...*channel) *wire {
	w := newEvent(name, privilege).channelBlock("Parkee", x.ch)
	for _, r := range retriever {
		w.channelBlock("Retriever", r)
	}
	elapsed := s.cfg.Now().Sub(x.at)
	left := int((x.timeout - elapsed + time.Second - 1) / time.Second)
	if left < 0 || name == "ParkedCallTimeOut" {
		left = 0
	}
	w.h("ParkerDialString", x.parker).h("Parkinglot", x.lot.name).hi("ParkingSpace", x.space)
	return w.hi("ParkingTimeout", left).hi("ParkingDuration", int(elapsed/time.Second))
}

// parkResponse writes Park's answer as Asterisk does: its Message line
// ends with a bare LF and one CRLF too many follows (README §21).
func parkResponse(m *ami.Message, kind, text string) []byte {
	b := response(kind, m).b
	b = append(b, "Message: "+text+"\n\r\n\r\n"...)
	return b
}

// actionPark parks Channel (captures 16b, 16c, 20v). With TimeoutChannel
// its bridge peer (a "bridged" park, the peer hangs up) the call comes
// back to that peer on timeout; otherwise the channel parks itself.
func (c *session) actionPark(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Channel")
	if name == "" {
		c.write(errorResponse(m, "Channel not specified"))
		return false
	}
	var override time.Duration
	if v := m.Get("Timeout"); v != "" {
		ms, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || ms < 0 {
			c.write(errorResponse(m, "Invalid Timeout value."))
			return false
		}
		override = time.Duration(ms) * time.Millisecond
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.model.find(name)
	if ch == nil {
		c.write(errorResponse(m, "Channel does not exist: "+name))
		return false
	}
	parker := s.model.find(m.Get("TimeoutChannel"))
	peer := peerOf(ch)
	bridged := parker != nil && parker == peer
	lotName := m.Get("Parkinglot")
	if lotName == "" {
		lotName = "default"
	}
	l := s.model.parking.find(lotName)
	if l == nil {
		if bridged {
			// Success, and nothing happens (README item 22).
			c.write(parkResponse(m, "Success", "Park successful"))
		} else {
			c.write(parkResponse(m, "Error", "Park action failed"))
		}
		return false
	}
	want, _ := strconv.Atoi(m.Get("ParkingSpace"))
	c.write(parkResponse(m, "Success", "Park successful"))
	s.park(ch, l, want, override, bridged, parker)
	return false
}

// park puts ch into lot l. Callers hold s.mu.
func (s *Server) park(ch *channel, l *lot, want int, override time.Duration, bridged bool, parker *channel) {
	p := &s.model.parking
	if ch.parked != nil {
		// Parked again: it gives up its space first (capture 16c12).
		s.emit(classCall, s.parkedEvent("ParkedCallGiveUp", "call,all", ch.parked).done())
		p.remove(ch.parked)
	}
	space := p.free(l, want)
	if space == 0 {
		return // the lot is full; Asterisk plays "all spaces taken"
	}
	if l.holding == nil {
		l.holding = s.createBridge(l.name)
	}
	timeout := l.timeout
	if override > 0 {
		timeout = override
	}
	dial := dialStringOf(ch)
	if bridged {
		dial = dialStringOf(parker)
	}
	x := &parked{lot: l, space: space, ch: ch, parker: dial, at: s.cfg.Now(), timeout: timeout}
	p.spaces = append(p.spaces, x)
	ch.parked = x
	peer := peerOf(ch)
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	s.emit(classCall, s.parkedEvent("ParkedCall", "call,all", x).done())
	s.detachDial(ch)
	s.enterBridge(l.holding, ch)
	if peer != nil && !peer.gone {
		// Alone in its bridge now, the parker (or the Dial that called
		// the parkee) ends.
		s.transfererLeaves(peer, false)
	}
	s.sched.after(timeout, func() { s.parkTimeout(x) })
}

// detachDial frees a dialled ;1 from the Dial of its caller, so that the
// caller ending does not end it.
func (s *Server) detachDial(c *channel) {
	if l := c.leg; l != nil && l.caller != nil && c == l.one {
		if l.caller.dialed == l {
			l.caller.dialed = nil
		}
		l.caller = nil
	}
}

// parkTimeout: the space timed out: ParkedCallTimeOut, and the parked
// channel dials its parker back from context park-dial (comebacktoorigin,
// capture 16b7 and 20z2).
func (s *Server) parkTimeout(x *parked) {
	ch := x.ch
	if ch.gone || ch.parked != x {
		return
	}
	s.emit(classCall, s.parkedEvent("ParkedCallTimeOut", "call,all", x).done())
	s.model.parking.remove(x)
	if ch.bridge != nil {
		s.leaveBridge(ch)
	}
	tech, rest, _ := strings.Cut(x.parker, "/")
	ch.context, ch.exten, ch.priority = parkDialContext, tech+"_"+rest, 1
	ch.app, ch.appData = "Dial", x.parker+",30"
	s.dial(ch, ch.appData)
}

// retrieve runs ParkedCall(lot,space) on an answered channel: it takes
// the call parked there into a new bridge (UnParkedCall, capture 20x). An
// empty space hangs the channel up.
func (s *Server) retrieve(one *channel, data string) {
	lotName, spaceStr, _ := strings.Cut(data, ",")
	l := s.model.parking.find(lotName)
	space, _ := strconv.Atoi(spaceStr)
	var x *parked
	if l != nil {
		x = s.model.parking.space(l, space)
	}
	if x == nil || x.ch.gone {
		s.hangupCall(one, causeNormal)
		return
	}
	s.emit(classCall, s.parkedEvent("UnParkedCall", "call,all", x, one).done())
	s.model.parking.remove(x)
	b := s.createBridge("")
	s.leaveBridge(x.ch)
	s.enterBridge(b, x.ch)
	one.linkedid = x.ch.linkedid
	s.enterBridge(b, one)
	s.spyKick()
}

// dialStringOf is the dial string a channel was created from:
// "Local/150@inoffice" for Local/150@inoffice-00000000;1.
func dialStringOf(c *channel) string {
	if c == nil {
		return ""
	}
	name := c.name
	if i := strings.LastIndexByte(name, ';'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	return name
}
