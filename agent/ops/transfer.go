package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// transferCall is a validated TransferArgs.
type transferCall struct {
	callID, transferer, to, mode, by string
}

func (l Limits) parseTransfer(a protocol.TransferArgs) (transferCall, error) {
	if err := l.checkCall(a.CallID); err != nil {
		return transferCall{}, err
	}
	if err := l.checkParty("transferer", a.Transferer); err != nil {
		return transferCall{}, err
	}
	if err := l.checkNumber("to", a.To); err != nil {
		return transferCall{}, err
	}
	if a.Mode != protocol.TransferBlind && a.Mode != protocol.TransferAttended {
		return transferCall{}, invalid("mode", "must be %s or %s", protocol.TransferBlind, protocol.TransferAttended)
	}
	if err := checkBy(a.By); err != nil {
		return transferCall{}, err
	}
	return transferCall{a.CallID, a.Transferer, a.To, a.Mode, a.By}, nil
}

func (l Limits) parseTransferControl(a protocol.TransferControlArgs) error {
	if err := l.checkCall(a.CallID); err != nil {
		return err
	}
	if err := l.checkParty("transferer", a.Transferer); err != nil {
		return err
	}
	return checkBy(a.By)
}

// Transfer hands the call over from the transferer to a.To. Blind: the
// transferer's peer goes to the target at once (BlindTransfer), confirmed
// by Asterisk's BlindTransfer event. Attended: the transferer consults
// the target first (Atxfer), confirmed by the bridge's transfer feature
// putting the transferer on hold; TransferComplete or TransferCancel
// finishes it. The target must exist in the agent's context, and an
// attended transfer needs the bridge's transfer features (Dial t/T):
// both are checked before anything is sent.
func (h *Handler) Transfer(ctx context.Context, a protocol.TransferArgs) (protocol.TransferResult, error) {
	c, err := h.cfg.Limits.parseTransfer(a)
	if err != nil {
		return protocol.TransferResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.TransferResult{}, err
	}
	tr, peer, err := h.bridgedParty(c.callID, "transferer", c.transferer)
	if err != nil {
		return protocol.TransferResult{}, err
	}
	if c.mode == protocol.TransferAttended {
		if h.xfers.get(tr.UniqueID) != nil {
			return protocol.TransferResult{}, errCallState("an attended transfer by %s is already in progress; complete or cancel it first", c.transferer)
		}
		if err := h.checkFeatures(ctx, tr, peer); err != nil {
			return protocol.TransferResult{}, err
		}
	}
	if err := h.checkTarget(ctx, "to", c.to); err != nil {
		return protocol.TransferResult{}, err
	}
	res := protocol.TransferResult{CallID: c.callID, Mode: c.mode, To: c.to, TransfererChannel: tr.Channel, TransfereeChannel: peer.Channel}
	if h.cfg.ExpectTransfer != nil {
		h.cfg.ExpectTransfer(tr.UniqueID, c.by, c.mode, c.to)
	}
	if c.mode == protocol.TransferBlind {
		res.Status = protocol.TransferDone
		return res, h.blindTransfer(ctx, tr, c.to)
	}
	res.Status = protocol.TransferConsulting
	return res, h.attendedTransfer(ctx, c, tr, peer)
}

// blindTransfer sends BlindTransfer and waits for its event (12b, 20f).
func (h *Handler) blindTransfer(ctx context.Context, tr protocol.Channel, to string) error {
	act := ami.NewAction("BlindTransfer", "Channel", tr.Channel, "Exten", to, "Context", h.cfg.Context)
	evs, err := h.sendConfirmed(ctx, h.cfg.AMI, act, confirmation{op: protocol.OpTransfer, events: "BlindTransfer", class: "call",
		match: func(m *ami.Message) bool {
			return m.Event() == "BlindTransfer" && m.Get("TransfererUniqueid") == tr.UniqueID
		}})
	if err != nil {
		var re *ami.ResponseError
		if errors.As(err, &re) && re.Message == "Transfer invalid" {
			return errCallState("asterisk: Transfer invalid: %s left its bridge", tr.Channel)
		}
		return err
	}
	if r := evs[0].Get("Result"); r != "Success" {
		return h.notConfirmed(protocol.OpTransfer, "Asterisk reported the blind transfer with Result "+r)
	}
	h.log.Info("blind transfer", "transferer", tr.Channel, "to", to)
	return nil
}

// attendedTransfer sends Atxfer, which only queues the feature code and
// the extension as DTMF on the transferer (README item 25), and waits for
// what the bridge does with them: Hold of the transferer when its
// transfer feature took them, or the digits reaching the peer as DTMF
// when it has none (capture 13d).
func (h *Handler) attendedTransfer(ctx context.Context, c transferCall, tr, peer protocol.Channel) error {
	x := &xfer{callID: c.callID, transferer: tr.UniqueID, origBridge: tr.BridgeID, to: c.to}
	if !h.xfers.add(x) {
		return fmt.Errorf("%w: %d attended transfers are in progress on this PBX", ErrBusy, h.cfg.CallControl.MaxTransfers)
	}
	act := ami.NewAction("Atxfer", "Channel", tr.Channel, "Exten", c.to, "Context", h.cfg.Context)
	evs, err := h.sendConfirmed(ctx, h.cfg.AMI, act, confirmation{op: protocol.OpTransfer, events: "Hold of " + tr.Channel, class: "call",
		cause: fmt.Sprintf("the bridge may have no transfer features (Dial option t/T), in which case the digits *2%s reached the other party as DTMF", c.to),
		match: func(m *ami.Message) bool {
			switch m.Event() {
			case "Hold":
				return m.Get("Uniqueid") == tr.UniqueID
			case "DTMFBegin", "DTMFEnd":
				return m.Get("Uniqueid") == peer.UniqueID && m.Get("Direction") == "Sent"
			}
			return false
		}})
	if err != nil {
		h.xfers.remove(tr.UniqueID)
		var re *ami.ResponseError
		if errors.As(err, &re) && strings.Contains(re.Message, "feature code") {
			return errFeature("asterisk: %s: the attended transfer feature (features.conf [featuremap] atxfer, or the channel's FEATUREMAP(atxfer)) is not set; nothing happened", re.Message)
		}
		return err
	}
	if evs[0].Event() != "Hold" {
		h.xfers.remove(tr.UniqueID)
		return errFeature("the call has no transfer features: Asterisk passed the transfer digits to %s as DTMF instead of starting "+
			"the transfer; the PBX must dial the call with Dial option T (caller) or t (callee), e.g. Dial(…,,tT)", peer.Channel)
	}
	h.log.Info("attended transfer started", "transferer", tr.Channel, "to", c.to)
	return nil
}

// checkFeatures reads the Dial that connected the transferer (Status:
// its application and data) and refuses an attended transfer the bridge
// cannot do: a caller needs Dial option T, a callee needs t. A call
// connected otherwise (a queue, an ARI bridge) is not refused here; the
// transfer itself then tells.
func (h *Handler) checkFeatures(ctx context.Context, tr, peer protocol.Channel) error {
	app, data, err := h.application(ctx, tr.Channel)
	if err != nil {
		return err
	}
	opt, who, dialer := "T", "its caller", tr.Channel
	if !strings.EqualFold(app, "Dial") {
		if app, data, err = h.application(ctx, peer.Channel); err != nil {
			return err
		}
		if !strings.EqualFold(app, "Dial") {
			return nil
		}
		opt, who, dialer = "t", "the party it called", peer.Channel
	}
	if strings.Contains(dialOptions(data), opt) {
		return nil
	}
	return errFeature("an attended transfer needs the bridge's transfer features, which this call does not have: %s runs Dial(%s), "+
		"without option %s for %s; dial with t/T (e.g. Dial(…,,tT)) and map atxfer in features.conf. Nothing was sent",
		dialer, data, opt, who)
}

// application reads a channel's application and its data (Status).
func (h *Handler) application(ctx context.Context, channel string) (app, data string, err error) {
	res, err := h.cfg.AMI.List(ctx, ami.NewAction("Status", "Channel", channel))
	if err != nil {
		return "", "", err
	}
	if len(res.Items) == 0 {
		return "", "", fmt.Errorf("%w: channel %s", ErrNotFound, channel)
	}
	return res.Items[0].Get("Application"), res.Items[0].Get("Data"), nil
}

// dialOptions is the options argument of Dial's data
// ("Local/160@inoffice,30,tT" → "tT").
func dialOptions(data string) string {
	parts := strings.SplitN(data, ",", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// TransferComplete finishes the attended transfer the transferer started:
// the transferer hangs up, and Asterisk joins its peer with the target
// (AttendedTransfer, captures 13a2 and 20l).
func (h *Handler) TransferComplete(ctx context.Context, a protocol.TransferControlArgs) (protocol.TransferControlResult, error) {
	tr, x, err := h.pendingTransfer(a)
	if err != nil {
		return protocol.TransferControlResult{}, err
	}
	target, ok := h.peer(tr)
	if !ok || tr.BridgeID == x.origBridge {
		return protocol.TransferControlResult{}, errCallState("the consultation of %s with %s is not connected yet; complete the transfer once it is", a.Transferer, x.to)
	}
	w := h.expect(confirmation{op: protocol.OpTransferComplete, action: "the hangup of the transferer", events: "AttendedTransfer", class: "call",
		match: func(m *ami.Message) bool {
			return m.Event() == "AttendedTransfer" && m.Get("OrigTransfererUniqueid") == tr.UniqueID
		}})
	// Not sendConfirmed: a hangup Asterisk refused leaves the transfer in
	// progress, while one it accepted ends it, confirmed or not.
	if _, err := h.cfg.AMI.Action(ctx, hangupAction(tr.Channel, DefaultCause)); err != nil {
		h.forget(w)
		return protocol.TransferControlResult{}, err
	}
	evs, err := h.confirm(ctx, w)
	h.xfers.remove(tr.UniqueID)
	if err != nil {
		return protocol.TransferControlResult{}, err
	}
	if r := evs[0].Get("Result"); r != "Success" {
		return protocol.TransferControlResult{}, h.notConfirmed(protocol.OpTransferComplete, "Asterisk reported the attended transfer with Result "+r)
	}
	h.log.Info("attended transfer completed", "transferer", tr.Channel, "target", target.Channel)
	return protocol.TransferControlResult{CallID: a.CallID, Status: protocol.TransferDone, To: x.to,
		TransfererChannel: tr.Channel, TargetChannel: target.Channel}, nil
}

// TransferCancel aborts the attended transfer the transferer started
// (CancelAtxfer): the target hangs up and the transferer is back with its
// peer, taken off hold (captures 13c, 20j). The agent sends it only for a
// transfer it follows: with none in progress Asterisk plays the abort
// code to the other party as DTMF (13c2).
func (h *Handler) TransferCancel(ctx context.Context, a protocol.TransferControlArgs) (protocol.TransferControlResult, error) {
	tr, x, err := h.pendingTransfer(a)
	if err != nil {
		return protocol.TransferControlResult{}, err
	}
	target, _ := h.peer(tr)
	_, err = h.sendConfirmed(ctx, h.cfg.AMI, ami.NewAction("CancelAtxfer", "Channel", tr.Channel),
		confirmation{op: protocol.OpTransferCancel, events: "Unhold of " + tr.Channel, class: "call",
			match: func(m *ami.Message) bool { return m.Event() == "Unhold" && m.Get("Uniqueid") == tr.UniqueID }})
	if err != nil {
		return protocol.TransferControlResult{}, err
	}
	h.xfers.remove(tr.UniqueID)
	res := protocol.TransferControlResult{CallID: a.CallID, Status: protocol.TransferCanceled, To: x.to, TransfererChannel: tr.Channel}
	if tr.BridgeID != x.origBridge {
		res.TargetChannel = target.Channel
	}
	h.log.Info("attended transfer canceled", "transferer", tr.Channel, "to", x.to)
	return res, nil
}

// pendingTransfer validates a and finds the attended transfer it names.
func (h *Handler) pendingTransfer(a protocol.TransferControlArgs) (protocol.Channel, *xfer, error) {
	if err := h.cfg.Limits.parseTransferControl(a); err != nil {
		return protocol.Channel{}, nil, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.Channel{}, nil, err
	}
	tr, _, err := h.party(a.CallID, "transferer", a.Transferer)
	if err != nil {
		return tr, nil, err
	}
	x := h.xfers.get(tr.UniqueID)
	if x == nil || x.callID != a.CallID {
		return tr, nil, errCallState("no attended transfer by %s is in progress on call %s", a.Transferer, a.CallID)
	}
	return tr, x, nil
}

// xfer is an attended transfer the agent started, followed until it is
// completed, canceled or its transferer is gone.
type xfer struct {
	callID     string
	transferer string // uniqueid
	origBridge string // the bridge with the transferee the transferer left to consult
	to         string
}

// transfers is the attended transfers in progress, by transferer
// uniqueid, bounded by CallControl.MaxTransfers.
type transfers struct {
	mu      sync.Mutex
	max     int
	byUID   map[string]*xfer
	refused uint64
}

func (t *transfers) add(x *xfer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byUID == nil {
		t.byUID = make(map[string]*xfer)
	}
	if len(t.byUID) >= t.max {
		t.refused++
		return false
	}
	t.byUID[x.transferer] = x
	return true
}

func (t *transfers) get(uid string) *xfer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byUID[uid]
}

func (t *transfers) remove(uid string) {
	t.mu.Lock()
	delete(t.byUID, uid)
	t.mu.Unlock()
}

func (t *transfers) counts() (int, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byUID), t.refused
}

// observe forgets a transfer once it is over: completed
// (AttendedTransfer), aborted (Unhold of the transferer) or its
// transferer gone (Hangup).
func (t *transfers) observe(m *ami.Message) {
	var uid string
	switch m.Event() {
	case "AttendedTransfer":
		uid = m.Get("OrigTransfererUniqueid")
	case "Unhold", "Hangup":
		uid = m.Get("Uniqueid")
	case ami.EventDisconnected:
		t.mu.Lock()
		clear(t.byUID) // what happened meanwhile is unknown
		t.mu.Unlock()
		return
	default:
		return
	}
	t.mu.Lock()
	if len(t.byUID) > 0 {
		delete(t.byUID, uid)
	}
	t.mu.Unlock()
}
