package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// CallControl bounds and paces the call-control operations (transfer,
// park, DTMF, mute). Zero fields take the Default* values below.
type CallControl struct {
	// MaxDTMFDigits bounds the digits of one DTMF request.
	MaxDTMFDigits int
	// DTMFDuration is a digit's length when the request does not say;
	// MinDTMFDuration..MaxDTMFDuration is what a request may ask.
	DTMFDuration    time.Duration
	MinDTMFDuration time.Duration
	MaxDTMFDuration time.Duration
	// MaxParkTimeout bounds a park request's timeout_s.
	MaxParkTimeout time.Duration
	// MaxTransfers bounds the attended transfers the agent follows at
	// once (each is a consultation call in progress on the PBX).
	MaxTransfers int
}

// Defaults of CallControl.
const (
	DefaultMaxDTMFDigits   = 32
	DefaultDTMFDuration    = 100 * time.Millisecond // PlayDTMF's own default
	DefaultMinDTMFDuration = 40 * time.Millisecond
	DefaultMaxDTMFDuration = 2 * time.Second
	DefaultMaxParkTimeout  = time.Hour
	DefaultMaxTransfers    = 256
	// dtmfGap is what one digit costs beyond its duration when the agent
	// checks that a request's digits fit in its deadline: an AMI round
	// trip and the DTMFEnd that confirms it.
	dtmfGap = 20 * time.Millisecond
)

func (c *CallControl) fill() {
	c.DTMFDuration = cmp.Or(c.DTMFDuration, DefaultDTMFDuration)
	c.MinDTMFDuration = cmp.Or(c.MinDTMFDuration, DefaultMinDTMFDuration)
	c.MaxDTMFDuration = cmp.Or(c.MaxDTMFDuration, DefaultMaxDTMFDuration)
	c.MaxParkTimeout = cmp.Or(c.MaxParkTimeout, DefaultMaxParkTimeout)
	c.MaxDTMFDigits = cmp.Or(c.MaxDTMFDigits, DefaultMaxDTMFDigits)
	c.MaxTransfers = cmp.Or(c.MaxTransfers, DefaultMaxTransfers)
}

// Validate says exactly what is wrong. Zero fields are fine (defaults).
func (c CallControl) Validate() error {
	var errs []error
	f := c
	f.fill()
	if f.MaxDTMFDigits < 1 || f.MaxDTMFDigits > 256 {
		errs = append(errs, fmt.Errorf("MaxDTMFDigits %d is outside 1..256", f.MaxDTMFDigits))
	}
	if f.MinDTMFDuration < 10*time.Millisecond || f.MaxDTMFDuration < f.MinDTMFDuration || f.MaxDTMFDuration > 10*time.Second ||
		f.DTMFDuration < f.MinDTMFDuration || f.DTMFDuration > f.MaxDTMFDuration {
		errs = append(errs, fmt.Errorf("DTMF durations %v (default) in %v..%v must satisfy 10ms <= min <= default <= max <= 10s",
			f.DTMFDuration, f.MinDTMFDuration, f.MaxDTMFDuration))
	}
	if f.MaxParkTimeout < time.Second || f.MaxParkTimeout > 24*time.Hour {
		errs = append(errs, fmt.Errorf("MaxParkTimeout %v is outside 1s..24h", f.MaxParkTimeout))
	}
	if f.MaxTransfers < 1 || f.MaxTransfers > 100000 {
		errs = append(errs, fmt.Errorf("MaxTransfers %d is outside 1..100000", f.MaxTransfers))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid call control limits: %w", err)
	}
	return nil
}

// Stats are the operations' counters the agent's metrics show.
type Stats struct {
	// Unconfirmed counts, per op, the operations answered not_confirmed:
	// Asterisk accepted them but the events that must follow did not
	// come within ConfirmTimeout, or said they failed. Every op that is
	// confirmed is there, at zero until it first goes unconfirmed.
	Unconfirmed map[string]uint64
	// Transfers is the attended transfers followed now.
	Transfers int
	// TransfersRefused counts attended transfers refused because
	// MaxTransfers were in progress.
	TransfersRefused uint64
}

// Stats reports the operations' counters.
func (h *Handler) Stats() Stats {
	n, refused := h.xfers.counts()
	return Stats{Unconfirmed: h.unconfirmedOps.snapshot(), Transfers: n, TransfersRefused: refused}
}

// errCallState is a call in a state the operation cannot act on.
func errCallState(format string, a ...any) error {
	return &protocol.Error{Code: protocol.ErrCodeCallState, Message: fmt.Sprintf(format, a...)}
}

// errFeature is a PBX that lacks what the operation needs.
func errFeature(format string, a ...any) error {
	return &protocol.Error{Code: protocol.ErrCodeFeatureMissing, Message: fmt.Sprintf(format, a...)}
}

// checkParty validates a party of a call: an extension or number, or a
// channel name (anything with a '/'). Empty is the call's first leg (see
// party).
func (l Limits) checkParty(field, s string) error {
	if s == "" {
		return nil
	}
	if strings.Contains(s, "/") {
		if err := l.checkChannelName(s); err != nil {
			return invalid(field, "%s", err.(*InvalidError).Reason)
		}
		return nil
	}
	return l.checkNumber(field, s)
}

// checkCall validates a call id: an Asterisk uniqueid or one of ours.
func (l Limits) checkCall(id string) error {
	if id == "" {
		return invalid("call_id", "is required")
	}
	return l.checkCallID("call_id", id)
}

// callChannels is the call's live channels: those whose linkedid is the
// call id (every leg of a call carries its first leg's uniqueid as
// linkedid).
func (h *Handler) callChannels(callID string) []protocol.Channel {
	var out []protocol.Channel
	for _, ch := range h.cfg.Channels.List() {
		if ch.LinkedID == callID || ch.UniqueID == callID {
			out = append(out, ch)
		}
	}
	return out
}

// party finds the channel of call callID that party stands for: a
// channel name of the call, or an extension: the call's channel named
// for it (Local/150@…;1, PJSIP/150-…), else the one whose caller id it
// is. Among several, a bridged one wins, then an answered one, then the
// oldest. It also returns the call's channels.
func (h *Handler) party(callID, field, party string) (protocol.Channel, []protocol.Channel, error) {
	chans := h.callChannels(callID)
	if len(chans) == 0 {
		return protocol.Channel{}, nil, fmt.Errorf("%w: call %s has no live channel", ErrNotFound, callID)
	}
	if party == "" {
		// The call's first leg: for a call placed through the API, the
		// phone of its from, which hands the call over or parks it.
		for _, ch := range chans {
			if ch.UniqueID == callID {
				return ch, chans, nil
			}
		}
		return protocol.Channel{}, nil, invalid(field, "is required: the first leg of call %s is gone", callID)
	}
	if strings.Contains(party, "/") {
		for _, ch := range chans {
			if ch.Channel == party {
				return ch, chans, nil
			}
		}
		return protocol.Channel{}, nil, fmt.Errorf("%w: %s %s is not a channel of call %s", ErrNotFound, field, party, callID)
	}
	var byName, byCID []protocol.Channel
	for _, ch := range chans {
		if ext, ok := channels.ExtensionOf(ch.Channel); ok && ext == party {
			byName = append(byName, ch)
		} else if ch.CallerIDNum == party && !strings.HasSuffix(ch.Channel, ";2") {
			// A Local ;2 half runs the dialplan; its ;1 is the party.
			byCID = append(byCID, ch)
		}
	}
	for _, cands := range [][]protocol.Channel{byName, byCID} {
		if len(cands) > 0 {
			slices.SortStableFunc(cands, func(a, b protocol.Channel) int { return rank(a) - rank(b) })
			return cands[0], chans, nil
		}
	}
	return protocol.Channel{}, nil, fmt.Errorf("%w: %s %s is not a party of call %s", ErrNotFound, field, party, callID)
}

// rank orders candidates for a party: bridged, then answered.
func rank(ch protocol.Channel) int {
	r := 2
	if ch.State == "Up" {
		r = 1
	}
	if ch.BridgeID != "" {
		r = 0
	}
	return r
}

// peer is the other channel in ch's bridge (a two-party bridge: the one
// ch is talking to).
func (h *Handler) peer(ch protocol.Channel) (protocol.Channel, bool) {
	if ch.BridgeID == "" {
		return protocol.Channel{}, false
	}
	for _, x := range h.cfg.Channels.List() {
		if x.BridgeID == ch.BridgeID && x.UniqueID != ch.UniqueID {
			return x, true
		}
	}
	return protocol.Channel{}, false
}

// bridgedParty resolves a party that must be talking to someone: its
// channel and its bridge peer.
func (h *Handler) bridgedParty(callID, field, party string) (protocol.Channel, protocol.Channel, error) {
	ch, _, err := h.party(callID, field, party)
	if err != nil {
		return ch, ch, err
	}
	peer, ok := h.peer(ch)
	if !ok {
		return ch, ch, errCallState("%s %s (%s) is not talking to anyone: it is in no bridge", field, party, ch.Channel)
	}
	return ch, peer, nil
}

// checkTarget asks Asterisk whether exten exists in the agent's context
// (ShowDialPlan, capture 20b-d) before any transfer or pickup is sent:
// Asterisk accepts a transfer to nowhere and then hangs the call up
// (README item 22).
func (h *Handler) checkTarget(ctx context.Context, field, exten string) error {
	res, err := h.cfg.AMI.List(ctx, ami.NewAction("ShowDialPlan", "Context", h.cfg.Context, "Extension", exten))
	var re *ami.ResponseError
	switch {
	case errors.As(err, &re) && strings.HasPrefix(re.Message, "Did not find extension"):
		return invalid(field, "%s does not exist in the PBX's dialplan context %s; nothing was sent", exten, h.cfg.Context)
	case errors.As(err, &re) && strings.HasPrefix(re.Message, "Did not find context"):
		return errFeature("the agent's dialplan context %s does not exist in the PBX; nothing was sent", h.cfg.Context)
	case errors.As(err, &re) && strings.EqualFold(re.Message, "Permission denied"):
		return &protocol.Error{Code: protocol.ErrCodeAMIError,
			Message: "asterisk: Permission denied for ShowDialPlan: the agent's AMI user needs write=reporting to check targets; nothing was sent"}
	case err != nil:
		return err
	case len(res.Items) == 0:
		return invalid(field, "%s does not exist in the PBX's dialplan context %s; nothing was sent", exten, h.cfg.Context)
	}
	return nil
}
