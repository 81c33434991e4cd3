package calls

import (
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// DefaultMaxFieldBytes bounds every text field of an emitted event. The
// longest real values are channel names of Local channels in long contexts
// (a hundred bytes or so); caller ids come from the far end, so a SIP peer
// can make them as long as Asterisk accepts (the AMI client takes messages
// up to 1 MiB), and a 200 KB one once made a batch too large to send.
const DefaultMaxFieldBytes = 1024

// minFieldBytes keeps call ids (Asterisk uniqueids, "1716212345.42") whole.
const minFieldBytes = 64

// boundFields cuts every text field of e longer than max bytes to a
// prefix of at most max bytes, at a character boundary, and names the cut
// fields in e.Truncated (JSON names, in field order). It reports whether
// it cut anything.
func boundFields(e *protocol.Event, max int) bool {
	fields := [...]struct {
		name string
		v    *string
	}{
		{"type", &e.Type}, {"call_id", &e.CallID}, {"linked_id", &e.LinkedID}, {"direction", &e.Direction},
		{"from", &e.From}, {"to", &e.To}, {"status", &e.Status}, {"channel", &e.Channel},
		{"answered_by", &e.AnsweredBy}, {"answered_channel", &e.AnsweredChannel},
		{"spy_channel", &e.SpyChannel}, {"target_channel", &e.TargetChannel},
		{"cause_text", &e.CauseText}, {"hungup_by", &e.HungupBy},
		{"dropped", &e.Dropped}, {"reason", &e.Reason},
		{"queue", &e.Queue}, {"member", &e.Member}, {"member_name", &e.MemberName}, {"extension", &e.Extension},
		{"recording_id", &e.RecordingID}, {"file", &e.File},
	}
	cut := false
	for _, f := range fields {
		if len(*f.v) <= max {
			continue
		}
		*f.v = truncateUTF8(*f.v, max)
		e.Truncated = append(e.Truncated, f.name)
		cut = true
	}
	return boundCallControl(e, max) || cut
}

// truncateUTF8 returns the longest prefix of s of at most max bytes that
// does not end inside a multi-byte character. Invalid bytes count as
// characters of their own.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for i := max; i > 0 && i > max-utf8.UTFMax; i-- {
		if !utf8.RuneStart(s[i]) {
			continue
		}
		// The cut at max splits s[i:] only if a valid character starts
		// at i and runs past max; an invalid byte is a character alone.
		if r, size := utf8.DecodeRuneInString(s[i:]); (r != utf8.RuneError || size > 1) && i+size > max {
			return s[:i]
		}
		break
	}
	return s[:max]
}

// bound applies the field limit to the events Handle or Resync return.
func (t *Tracker) bound(evs []protocol.Event) []protocol.Event {
	for i := range evs {
		boundFields(&evs[i], t.cfg.MaxFieldBytes)
	}
	return evs
}
