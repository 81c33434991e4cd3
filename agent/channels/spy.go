package channels

import (
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// stateUp is ChannelStateDesc of an answered channel.
const stateUp = "Up"

// ExtensionOf returns the extension a channel name belongs to, and whether
// the name has the shape of a phone's leg at all:
//
//   - Local/150@inoffice-00000009;1 → 150 (only the ;1 half: it is the leg
//     bridged to the other party; ;2 runs the dialplan of 150)
//   - PJSIP/150-0000002a, SIP/150-0000000b → 150 (the endpoint name is
//     everything up to the last '-', which starts Asterisk's counter)
func ExtensionOf(name string) (string, bool) {
	tech, rest, ok := strings.Cut(name, "/")
	if !ok || tech == "" || rest == "" {
		return "", false
	}
	if strings.EqualFold(tech, "Local") {
		ext, ctxAndID, ok := strings.Cut(rest, "@")
		if !ok || ext == "" || !strings.HasSuffix(ctxAndID, ";1") {
			return "", false
		}
		return ext, true
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || i == len(rest)-1 {
		return "", false
	}
	return rest[:i], true
}

// SpyPrefix is the ChanSpy channel prefix that reaches exactly the call
// of the live channel named name.
//
// ChanSpy matches a prefix of the channel name (transcript 07). For a Local
// channel we drop the ";1": "Local/150@inoffice-00000009" matches both
// halves of that one Local pair, and the b option makes ChanSpy take the
// bridged half (;1), as the captured spy-prefix-5 shows. For other
// technologies the full name ("PJSIP/150-0000002a") is already a prefix of
// exactly one channel. Both forms are specific to this call: a bare
// "PJSIP/150" would also match "PJSIP/1500-…", and a bare
// "Local/150@inoffice" would follow the extension onto its next call,
// which is not what a supervisor asked for.
func SpyPrefix(name string) string {
	if tech, rest, ok := strings.Cut(name, "/"); ok && strings.EqualFold(tech, "Local") {
		if i := strings.LastIndexByte(rest, ';'); i >= 0 {
			return name[:len(tech)+1+i]
		}
	}
	return name
}

// LiveForExtension returns the channel a supervisor would spy on to hear
// extension ext: a live channel whose name belongs to ext (see
// ExtensionOf). An answered (Up) channel wins over one still ringing; among
// equals the oldest wins, so a second call that is only being set up does
// not steal the monitor from the conversation in progress.
func (t *Table) LiveForExtension(ext string) (protocol.Channel, bool) {
	if ext == "" {
		return protocol.Channel{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	var best *protocol.Channel
	for _, ch := range t.byID {
		if e, ok := ExtensionOf(ch.Channel); !ok || e != ext {
			continue
		}
		if best == nil || better(ch, best) {
			best = ch
		}
	}
	if best == nil {
		return protocol.Channel{}, false
	}
	return *best, true
}

func better(a, b *protocol.Channel) bool {
	if aUp, bUp := a.State == stateUp, b.State == stateUp; aUp != bUp {
		return aUp
	}
	return compareAge(*a, *b) < 0
}
