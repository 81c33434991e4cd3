package ops

import (
	"context"
	"errors"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Mute mutes or unmutes a party's audio with MuteAudio (captures 17,
// 20r-t). Its direction is lower case only: "in" is what the party says,
// "out" what it hears. Asterisk answers with no Message and sends no
// event, and it answers Success when nothing changes (already muted), so
// what the agent can report is that Asterisk accepted the request on a
// live channel of the call. Hold has no AMI action in Asterisk 22.
func (h *Handler) Mute(ctx context.Context, a protocol.MuteArgs) (protocol.MuteResult, error) {
	l := h.cfg.Limits
	if err := l.checkCall(a.CallID); err != nil {
		return protocol.MuteResult{}, err
	}
	if a.Party == "" {
		return protocol.MuteResult{}, invalid("party", "is required")
	}
	if err := l.checkParty("party", a.Party); err != nil {
		return protocol.MuteResult{}, err
	}
	switch a.Direction {
	case protocol.MuteIn, protocol.MuteOut, protocol.MuteAll:
	default:
		return protocol.MuteResult{}, invalid("direction", "must be %s, %s or %s", protocol.MuteIn, protocol.MuteOut, protocol.MuteAll)
	}
	if err := checkBy(a.By); err != nil {
		return protocol.MuteResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.MuteResult{}, err
	}
	ch, _, err := h.party(a.CallID, "party", a.Party)
	if err != nil {
		return protocol.MuteResult{}, err
	}
	state := "off"
	if a.Muted {
		state = "on"
	}
	_, err = h.cfg.AMI.Action(ctx, ami.NewAction("MuteAudio", "Channel", ch.Channel, "Direction", a.Direction, "State", state))
	var re *ami.ResponseError
	if errors.As(err, &re) && re.Message == "Permission denied" {
		return protocol.MuteResult{}, &protocol.Error{Code: protocol.ErrCodeAMIError,
			Message: "asterisk: Permission denied for MuteAudio: the agent's AMI user needs write=system"}
	}
	if err != nil {
		return protocol.MuteResult{}, err
	}
	h.log.Info("mute", "channel", ch.Channel, "direction", a.Direction, "muted", a.Muted)
	return protocol.MuteResult{CallID: a.CallID, Channel: ch.Channel, Direction: a.Direction, Muted: a.Muted}, nil
}
