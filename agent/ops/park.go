package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// lotRe: a parking lot name, as res_parking.conf sections are named.
var lotRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,79}$`)

// spaceRe: a parking space, digits.
var spaceRe = regexp.MustCompile(`^[0-9]{1,6}$`)

func checkLot(lot string, required bool) error {
	if lot == "" && !required {
		return nil
	}
	if !lotRe.MatchString(lot) {
		return invalid("lot", "must be 1 to 79 of the characters A-Z a-z 0-9 _ -")
	}
	return nil
}

// Park parks the party the parker is talking to: Park with TimeoutChannel
// the parker (a "bridged" park: the parker's leg ends, and on timeout the
// call comes back to it), confirmed by the ParkedCall event that says
// where (captures 16b, 20v). A lot that does not exist is refused first:
// Asterisk answers a bridged park into one with Success and does nothing
// (README item 22).
func (h *Handler) Park(ctx context.Context, a protocol.ParkArgs) (protocol.ParkResult, error) {
	l := h.cfg.Limits
	if err := l.checkCall(a.CallID); err != nil {
		return protocol.ParkResult{}, err
	}
	if err := l.checkParty("parker", a.Parker); err != nil {
		return protocol.ParkResult{}, err
	}
	if err := checkLot(a.Lot, false); err != nil {
		return protocol.ParkResult{}, err
	}
	max := h.cfg.CallControl.MaxParkTimeout
	if a.TimeoutS < 0 || time.Duration(a.TimeoutS)*time.Second > max {
		return protocol.ParkResult{}, invalid("timeout_s", "must be 0 (the lot's own) to %d seconds", int(max/time.Second))
	}
	if err := checkBy(a.By); err != nil {
		return protocol.ParkResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.ParkResult{}, err
	}
	parker, parkee, err := h.bridgedParty(a.CallID, "parker", a.Parker)
	if err != nil {
		return protocol.ParkResult{}, err
	}
	if a.Lot != "" {
		if err := h.checkLot(ctx, a.Lot); err != nil {
			return protocol.ParkResult{}, err
		}
	}
	if h.cfg.ExpectPark != nil {
		h.cfg.ExpectPark(parkee.UniqueID, a.By)
	}
	act := ami.NewAction("Park", "Channel", parkee.Channel, "TimeoutChannel", parker.Channel)
	if a.Lot != "" {
		act.Add("Parkinglot", a.Lot)
	}
	if a.TimeoutS > 0 {
		act.Add("Timeout", strconv.Itoa(a.TimeoutS*1000))
	}
	evs, err := h.sendConfirmed(ctx, h.cfg.AMI, act, confirmation{op: protocol.OpPark, events: "ParkedCall", class: "call",
		match: func(m *ami.Message) bool {
			return m.Event() == "ParkedCall" && m.Get("ParkeeUniqueid") == parkee.UniqueID
		}})
	if err != nil {
		return protocol.ParkResult{}, err
	}
	ev := evs[0]
	res := protocol.ParkResult{CallID: a.CallID, Lot: ev.Get("Parkinglot"), Space: ev.Get("ParkingSpace"),
		TimeoutS: atoi(ev.Get("ParkingTimeout")), Channel: parkee.Channel, ParkerChannel: parker.Channel}
	h.log.Info("parked", "channel", parkee.Channel, "lot", res.Lot, "space", res.Space)
	return res, nil
}

// checkLot refuses a lot the PBX does not have (Parkinglots).
func (h *Handler) checkLot(ctx context.Context, lot string) error {
	res, err := h.cfg.AMI.List(ctx, ami.NewAction("Parkinglots"))
	if err != nil {
		return err
	}
	var names []string
	for _, it := range res.Items {
		if name := it.Get("Name"); strings.EqualFold(name, lot) {
			return nil
		} else if name != "" {
			names = append(names, name)
		}
	}
	return invalid("lot", "this PBX has no parking lot %q (its lots: %s); nothing was sent", lot, strings.Join(names, ", "))
}

// Parked lists the parked calls, of one lot or of all (ParkedCalls).
func (h *Handler) Parked(ctx context.Context, a protocol.ParkedArgs) (protocol.ParkedResult, error) {
	if err := checkLot(a.Lot, false); err != nil {
		return protocol.ParkedResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.ParkedResult{}, err
	}
	list, err := h.parkedCalls(ctx, a.Lot)
	if err != nil {
		return protocol.ParkedResult{}, err
	}
	return protocol.ParkedResult{Parked: list}, nil
}

func (h *Handler) parkedCalls(ctx context.Context, lot string) ([]protocol.ParkedCall, error) {
	act := ami.NewAction("ParkedCalls")
	if lot != "" {
		act.Add("ParkingLot", lot)
	}
	res, err := h.cfg.AMI.List(ctx, act)
	var re *ami.ResponseError
	if errors.As(err, &re) && strings.Contains(re.Message, "could not be found") {
		return nil, fmt.Errorf("%w: this PBX has no parking lot %q", ErrNotFound, lot)
	}
	if err != nil {
		return nil, err
	}
	out := make([]protocol.ParkedCall, 0, len(res.Items))
	for _, it := range res.Items {
		out = append(out, protocol.ParkedCall{
			Lot: it.Get("Parkinglot"), Space: it.Get("ParkingSpace"), CallID: it.Get("ParkeeLinkedid"),
			Channel: it.Get("ParkeeChannel"), UniqueID: it.Get("ParkeeUniqueid"),
			CallerIDNum: known(it.Get("ParkeeCallerIDNum")), CallerIDName: known(it.Get("ParkeeCallerIDName")),
			Parker: it.Get("ParkerDialString"), TimeoutS: atoi(it.Get("ParkingTimeout")), DurationS: atoi(it.Get("ParkingDuration")),
		})
	}
	return out, nil
}

// ParkedPickup rings a.To and, when it answers, gives it the call parked
// in a.Lot/a.Space: Originate Local/<to> running ParkedCall(lot,space)
// (capture 20x), confirmed by UnParkedCall. A phone still ringing when the
// request's deadline nears is answered PickupRinging: call.unparked
// follows when it picks up.
func (h *Handler) ParkedPickup(ctx context.Context, a protocol.ParkedPickupArgs) (protocol.ParkedPickupResult, error) {
	l := h.cfg.Limits
	if err := checkLot(a.Lot, true); err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	if !spaceRe.MatchString(a.Space) {
		return protocol.ParkedPickupResult{}, invalid("space", "must be 1 to 6 digits")
	}
	if err := l.checkNumber("to", a.To); err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	ring, err := l.timeout(a.TimeoutS)
	if err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	if err := checkBy(a.By); err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	parked, err := h.parkedCalls(ctx, a.Lot)
	if err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	var pc *protocol.ParkedCall
	for i := range parked {
		if parked[i].Space == a.Space {
			pc = &parked[i]
		}
	}
	if pc == nil {
		return protocol.ParkedPickupResult{}, fmt.Errorf("%w: no call is parked in lot %s space %s", ErrNotFound, a.Lot, a.Space)
	}
	if err := h.checkTarget(ctx, "to", a.To); err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	pickupID := h.cfg.NewCallID()
	res := protocol.ParkedPickupResult{CallID: pc.CallID, Lot: a.Lot, Space: a.Space, To: a.To, PickupCallID: pickupID}
	w := h.expect(confirmation{op: protocol.OpParkedPickup, action: "Originate of ParkedCall", events: "UnParkedCall", class: "call",
		match: func(m *ami.Message) bool {
			return m.Event() == "UnParkedCall" && m.Get("ParkeeUniqueid") == pc.UniqueID
		}})
	act := originateAction(localDial(a.To, h.cfg.Context), "ParkedCall", a.Lot+","+a.Space, "", ring, pickupID, nil)
	p, err := h.originate(ctx, act, ring, pickupID, func() {
		if h.cfg.ExpectPickup != nil {
			h.cfg.ExpectPickup(pickupID, pc.CallID, a.By)
		}
	})
	if err != nil {
		h.forget(w)
		return protocol.ParkedPickupResult{}, err
	}
	res.Status, err = h.awaitPickup(ctx, w, p, a)
	if err != nil {
		return protocol.ParkedPickupResult{}, err
	}
	h.log.Info("parked call pickup", "lot", a.Lot, "space", a.Space, "to", a.To, "status", res.Status)
	return res, nil
}

// awaitPickup waits, until the request's deadline nears, for the pickup to
// take the call (UnParkedCall) or its phone to fail to answer. It waits
// longer than the confirmation timeout (a phone rings for seconds), and a
// phone still ringing at the end is no failure: PickupRinging.
func (h *Handler) awaitPickup(ctx context.Context, w *waiter, p Pending, a protocol.ParkedPickupArgs) (string, error) {
	defer h.forget(w)
	wait := h.cfg.ConfirmTimeout
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl)-answerMargin, 0)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	failed := make(chan *ami.OriginateResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if r, err := p.Wait(wctx); err == nil && !r.Success {
			failed <- r
		}
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-w.got:
		return protocol.PickupDone, nil
	case <-w.lost:
		return "", fmt.Errorf("the pickup call: waiting for UnParkedCall: %w (%s)", ami.ErrDisconnected, w.why)
	case r := <-failed:
		return "", h.notConfirmed(protocol.OpParkedPickup,
			fmt.Sprintf("the pickup call to %s failed (%s); the call stays parked in lot %s space %s", a.To, originateReason(r.Reason), a.Lot, a.Space))
	case <-wctx.Done():
		return protocol.PickupRinging, nil
	}
}
