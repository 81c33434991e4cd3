package ops

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// dtmfRe: DTMF digits. PlayDTMF takes any character and plays it (README
// item 29), so anything else is refused here.
var dtmfRe = regexp.MustCompile(`^[0-9*#A-D]+$`)

// DTMF plays digits to a party of a call, one PlayDTMF per digit, each
// confirmed by its DTMFEnd event (captures 16, 20p-q).
//
// PlayDTMF holds the AMI session it runs on for the digit's duration
// before Asterisk answers (README item 29), so the digits go out on the
// agent's second AMI session (Config.DTMF): the first, which carries every
// other operation and the event stream, never waits for them. DTMF
// requests take turns on that session so two of them never interleave
// their digits.
func (h *Handler) DTMF(ctx context.Context, a protocol.DTMFArgs) (protocol.DTMFResult, error) {
	cc := h.cfg.CallControl
	l := h.cfg.Limits
	if err := l.checkCall(a.CallID); err != nil {
		return protocol.DTMFResult{}, err
	}
	if a.Party == "" {
		return protocol.DTMFResult{}, invalid("party", "is required")
	}
	if err := l.checkParty("party", a.Party); err != nil {
		return protocol.DTMFResult{}, err
	}
	if len(a.Digits) > cc.MaxDTMFDigits || !dtmfRe.MatchString(a.Digits) {
		return protocol.DTMFResult{}, invalid("digits", "must be 1 to %d of 0-9 * # A-D", cc.MaxDTMFDigits)
	}
	dur := cc.DTMFDuration
	if a.DurationMS != 0 {
		dur = time.Duration(a.DurationMS) * time.Millisecond
		if a.DurationMS < 0 || dur < cc.MinDTMFDuration || dur > cc.MaxDTMFDuration {
			return protocol.DTMFResult{}, invalid("duration_ms", "must be %d to %d", cc.MinDTMFDuration.Milliseconds(), cc.MaxDTMFDuration.Milliseconds())
		}
	}
	if err := checkBy(a.By); err != nil {
		return protocol.DTMFResult{}, err
	}
	need := time.Duration(len(a.Digits)) * (dur + dtmfGap)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < need {
		return protocol.DTMFResult{}, invalid("digits", "%d digits of %v take about %v, longer than the request's deadline allows; send fewer at a time",
			len(a.Digits), dur, need.Round(time.Millisecond))
	}
	if err := h.requireAMI(); err != nil {
		return protocol.DTMFResult{}, err
	}
	if !h.dtmf.Connected() {
		return protocol.DTMFResult{}, &protocol.Error{Code: protocol.ErrCodeAMIDown, Message: "the agent's DTMF AMI session is down"}
	}
	ch, _, err := h.party(a.CallID, "party", a.Party)
	if err != nil {
		return protocol.DTMFResult{}, err
	}
	select {
	case h.dtmfTurn <- struct{}{}:
		defer func() { <-h.dtmfTurn }()
	case <-ctx.Done():
		return protocol.DTMFResult{}, ctx.Err()
	}
	for _, d := range a.Digits {
		if err := h.playDigit(ctx, ch, string(d), dur); err != nil {
			return protocol.DTMFResult{}, err
		}
	}
	h.log.Info("dtmf played", "channel", ch.Channel, "digits", len(a.Digits), "duration", dur)
	return protocol.DTMFResult{CallID: a.CallID, Channel: ch.Channel, Digits: a.Digits, DurationMS: int(dur / time.Millisecond)}, nil
}

// playDigit plays one digit and waits for its DTMFEnd: on the channel's
// Local ;2 half, which reads what is played to the ;1 half, or on the
// channel itself.
func (h *Handler) playDigit(ctx context.Context, ch protocol.Channel, digit string, dur time.Duration) error {
	half := ""
	if strings.HasSuffix(ch.Channel, ";1") {
		half = strings.TrimSuffix(ch.Channel, ";1") + ";2"
	}
	act := ami.NewAction("PlayDTMF", "Channel", ch.Channel, "Digit", digit, "Duration", strconv.FormatInt(dur.Milliseconds(), 10))
	_, err := h.sendConfirmed(ctx, h.dtmf, act, confirmation{op: protocol.OpDTMF, events: "DTMFEnd of digit " + digit, class: "dtmf",
		match: func(m *ami.Message) bool {
			return m.Event() == "DTMFEnd" && m.Get("Digit") == digit &&
				(m.Get("Uniqueid") == ch.UniqueID || (half != "" && m.Get("Channel") == half))
		}})
	return err
}
