package calls

import (
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Call control: transfers and parking (protocol 3).
//
//	event                   emitted on
//	call.transfer_started   BlindTransfer (Result Success); the Hold of the
//	                        transferer of an attended transfer the agent
//	                        started (ExpectTransfer); AttendedTransfer of one
//	                        it did not see start
//	call.transferred        BlindTransfer, AttendedTransfer (Result Success)
//	call.transfer_canceled  Unhold of the transferer of a started attended
//	                        transfer that did not complete
//	call.parked             ParkedCall
//	call.unparked           UnParkedCall (a pickup)
//	call.park_timeout       ParkedCallTimeOut (the call comes back to its parker)
//
// The leg that handed the call over (a transferer, the parker) leaves the
// call without ending it: its hangup is not who hung up the call. A pickup
// the agent placed (ExpectPickup) joins the parked call as one of its legs
// instead of starting a call of its own.

// ccCall is what a call remembers of its transfers and parking.
type ccCall struct {
	xfer    *xferHint              // the transfer the agent is about to make
	pending *protocol.TransferInfo // an attended transfer started, not yet done
	// held: a party of the call is on hold (a transfer feature holds the
	// transferer while it consults); the legs from index heldFrom on
	// joined meanwhile. Those still there at the Unhold were a
	// consultation that is over: they leave without ending the call.
	held     bool
	heldFrom int
	parkBy   string             // who asked for the park (ExpectPark)
	parked   *protocol.ParkInfo // where the call is parked
}

type xferHint struct {
	transferer   string // uniqueid
	by, mode, to string
	at           time.Time
}

// pickupHint is a pickup the agent is placing: its channel joins the
// parked call.
type pickupHint struct {
	parked, by string
	at         time.Time
}

// ExpectTransfer tells the tracker that the agent is about to transfer
// the call of channel uniqueid (the transferer) to to, in mode, at the
// request of by: the call's transfer events name by.
func (t *Tracker) ExpectTransfer(uniqueid, by, mode, to string) {
	if ch := t.chans[uniqueid]; ch != nil && !ch.leg.call.ended {
		ch.leg.call.cc.xfer = &xferHint{transferer: uniqueid, by: by, mode: mode, to: to, at: t.cfg.Now()}
	}
}

// ExpectPark tells the tracker that the agent is about to park channel
// uniqueid at the request of by.
func (t *Tracker) ExpectPark(uniqueid, by string) {
	if ch := t.chans[uniqueid]; ch != nil && !ch.leg.call.ended {
		ch.leg.call.cc.parkBy = by
	}
}

// ExpectPickup tells the tracker that pickupCallID (the ChannelId of the
// Originate that rings the picker) is a pickup of parkedCallID asked for
// by by: its channels are a leg of the parked call.
func (t *Tracker) ExpectPickup(pickupCallID, parkedCallID, by string) {
	if pickupCallID == "" || t.calls[parkedCallID] == nil {
		return
	}
	if t.pickups == nil {
		t.pickups = make(map[string]*pickupHint)
	}
	now := t.cfg.Now()
	for id, p := range t.pickups {
		if now.Sub(p.at) > t.cfg.ExpectTTL {
			delete(t.pickups, id)
		}
	}
	if len(t.pickups) >= t.cfg.MaxExpectations {
		return
	}
	t.pickups[pickupCallID] = &pickupHint{parked: parkedCallID, by: by, at: now}
}

// joinPickup attaches the first channel of an expected pickup to the
// parked call; it reports whether it did.
func (t *Tracker) joinPickup(uid, name string, state int) bool {
	p := t.pickups[uid]
	if p == nil {
		return false
	}
	delete(t.pickups, uid)
	c := t.calls[p.parked]
	if c == nil || c.ended || t.attach(c, uid, name, t.clockNow) == nil {
		return false
	}
	c.cc.parkBy = p.by
	t.channelState(t.chans[uid], state, true)
	return true
}

// onCallControl handles the events of transfers and parking.
func (t *Tracker) onCallControl(name string, m *ami.Message) {
	switch name {
	case "BlindTransfer":
		t.onBlindTransfer(m)
	case "AttendedTransfer":
		t.onAttendedTransfer(m)
	case "Hold":
		t.onHold(m)
	case "Unhold":
		t.onUnhold(m)
	case "ParkedCall", "UnParkedCall", "ParkedCallTimeOut":
		t.onPark(name, m)
	}
}

// transferBy is who asked for a transfer by the transferer ch: the agent's
// hint, else the transferer's own extension.
func (t *Tracker) transferBy(c *call, ch *channel, mode string) (by, to string) {
	if h := c.cc.xfer; h != nil && h.transferer == ch.uid && h.mode == mode && t.cfg.Now().Sub(h.at) <= apiHangupWindow {
		return h.by, h.to
	}
	return extOf(ch.name), ""
}

func (t *Tracker) onBlindTransfer(m *ami.Message) {
	ch := t.chans[m.Get("TransfererUniqueid")]
	if ch == nil || !strings.EqualFold(m.Get("Result"), "Success") {
		return
	}
	c := ch.leg.call
	if c.ended {
		return
	}
	by, _ := t.transferBy(c, ch, protocol.TransferBlind)
	info := &protocol.TransferInfo{Mode: protocol.TransferBlind, To: m.Get("Extension"), By: by,
		Transferer: extOf(ch.name), TransfererChannel: ch.name}
	c.cc.xfer = nil
	ch.leg.handedOver = true
	t.emitTransfer(c, protocol.EventCallTransferStarted, info)
	t.emitTransfer(c, protocol.EventCallTransferred, info)
}

func (t *Tracker) onHold(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil || ch.leg.call.ended {
		return
	}
	c := ch.leg.call
	if !c.cc.held {
		c.cc.held, c.cc.heldFrom = true, len(c.legs)
	}
	h := c.cc.xfer
	if h == nil || h.transferer != ch.uid || h.mode != protocol.TransferAttended || c.cc.pending != nil {
		return
	}
	c.cc.pending = &protocol.TransferInfo{Mode: protocol.TransferAttended, To: h.to, By: h.by,
		Transferer: extOf(ch.name), TransfererChannel: ch.name}
	t.emitTransfer(c, protocol.EventCallTransferStarted, c.cc.pending)
}

func (t *Tracker) onUnhold(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil || ch.leg.call.ended {
		return
	}
	c := ch.leg.call
	if c.cc.held {
		c.cc.held = false
		for _, l := range c.legs[min(c.cc.heldFrom, len(c.legs)):] {
			l.handedOver = true // the consultation hangs up next; the call goes on
		}
	}
	p := c.cc.pending
	if p == nil || p.TransfererChannel != ch.name {
		return
	}
	c.cc.pending, c.cc.xfer = nil, nil
	t.emitTransfer(c, protocol.EventCallTransferCanceled, p)
}

func (t *Tracker) onAttendedTransfer(m *ami.Message) {
	ch := t.chans[m.Get("OrigTransfererUniqueid")]
	if ch == nil || !strings.EqualFold(m.Get("Result"), "Success") {
		return
	}
	c := ch.leg.call
	if c.ended {
		return
	}
	target := m.Get("TransferTargetChannel")
	if target == "" && c.cc.held && c.cc.heldFrom < len(c.legs) {
		// Asterisk leaves the TransferTarget block out when the target's
		// snapshot is gone (seen on 22.10.1): the consultation is the
		// first leg that joined while the transferer was held.
		target = c.legs[c.cc.heldFrom].name
	}
	info := c.cc.pending
	if info == nil {
		// Started by a phone (its transfer feature), or before the agent
		// came up: it starts and completes here.
		by, to := t.transferBy(c, ch, protocol.TransferAttended)
		if to == "" {
			to = extOf(target)
		}
		info = &protocol.TransferInfo{Mode: protocol.TransferAttended, To: to, By: by, Transferer: extOf(ch.name), TransfererChannel: ch.name}
		t.emitTransfer(c, protocol.EventCallTransferStarted, info)
	}
	info.TargetChannel = target
	c.cc.pending, c.cc.xfer, c.cc.held = nil, nil, false
	ch.leg.handedOver = true
	if sec := t.chans[m.Get("SecondTransfererUniqueid")]; sec != nil {
		sec.leg.handedOver = true
	}
	t.emitTransfer(c, protocol.EventCallTransferred, info)
}

func (t *Tracker) onPark(name string, m *ami.Message) {
	if _, item := m.Lookup("ActionID"); item {
		return // an item of a ParkedCalls list, not a park
	}
	ch := t.chans[m.Get("ParkeeUniqueid")]
	if ch == nil {
		return
	}
	c := ch.leg.call
	if c.ended {
		return
	}
	info := &protocol.ParkInfo{Lot: m.Get("Parkinglot"), Space: m.Get("ParkingSpace"), Channel: m.Get("ParkeeChannel"),
		Parker: extOf(m.Get("ParkerDialString")), By: c.cc.parkBy}
	typ := protocol.EventCallParked
	switch name {
	case "ParkedCall":
		info.TimeoutS = atoi(m.Get("ParkingTimeout"))
		c.cc.parked = info
		// Whoever else was in the call (the parker) leaves it to the
		// parked party: their hangups do not end it.
		for _, l := range c.legs {
			if l != ch.leg {
				l.handedOver = true
			}
		}
	case "UnParkedCall":
		typ = protocol.EventCallUnparked
		info.RetrievedBy = extOf(m.Get("RetrieverChannel"))
		c.cc.parked = nil
	case "ParkedCallTimeOut":
		typ = protocol.EventCallParkTimeout
		c.cc.parked = nil
	}
	e := t.event(c, typ, t.clockNow)
	t.withAnswer(c, &e)
	e.Park = info
	t.out = append(t.out, e)
}

func (t *Tracker) emitTransfer(c *call, typ string, info *protocol.TransferInfo) {
	e := t.event(c, typ, t.clockNow)
	t.withAnswer(c, &e)
	cp := *info
	e.Transfer = &cp
	t.out = append(t.out, e)
}

// boundCallControl cuts the text fields of an event's transfer and park
// facts to max bytes, naming them (transfer.to, park.channel…) in
// Truncated.
func boundCallControl(e *protocol.Event, max int) bool {
	type field struct {
		name string
		v    *string
	}
	var fields []field
	if x := e.Transfer; x != nil {
		fields = append(fields, field{"transfer.mode", &x.Mode}, field{"transfer.to", &x.To}, field{"transfer.by", &x.By},
			field{"transfer.transferer", &x.Transferer}, field{"transfer.transferer_channel", &x.TransfererChannel},
			field{"transfer.target_channel", &x.TargetChannel})
	}
	if p := e.Park; p != nil {
		fields = append(fields, field{"park.lot", &p.Lot}, field{"park.space", &p.Space}, field{"park.channel", &p.Channel},
			field{"park.parker", &p.Parker}, field{"park.retrieved_by", &p.RetrievedBy}, field{"park.by", &p.By})
	}
	cut := false
	for _, f := range fields {
		if len(*f.v) > max {
			*f.v = truncateUTF8(*f.v, max)
			e.Truncated = append(e.Truncated, f.name)
			cut = true
		}
	}
	return cut
}
