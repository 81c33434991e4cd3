package amitest

import (
	"strconv"
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Event classes, as Asterisk's EVENT_FLAG_* bits. An event carries one
// class; a session receives it when its Events mask holds that class.
type eventClass uint32

const (
	classSystem eventClass = 1 << iota
	classCall
	classLog
	classVerbose
	classCommand
	classAgent
	classUser
	classConfig
	classDTMF
	classReporting
	classCDR
	classDialplan
	classOriginate
	classAGI
	classCC
	classAOC
	classTest
	classSecurity
	classMessage

	classAll = eventClass(1)<<iota - 1
)

var classNames = map[string]eventClass{
	"system": classSystem, "call": classCall, "log": classLog, "verbose": classVerbose,
	"command": classCommand, "agent": classAgent, "user": classUser, "config": classConfig,
	"dtmf": classDTMF, "reporting": classReporting, "cdr": classCDR, "dialplan": classDialplan,
	"originate": classOriginate, "agi": classAGI, "cc": classCC, "aoc": classAOC,
	"test": classTest, "security": classSecurity, "message": classMessage, "all": classAll,
}

// parseEventMask reads a Login "Events:" or Events "EventMask:" value the
// way Asterisk's strings_to_mask does: on/yes/true (or a number other than
// 0) mean everything, off/no/false/0 nothing, else a comma list of classes.
// An empty value is no mask at all (ok false): the session keeps its own.
func parseEventMask(v string) (mask eventClass, ok bool) {
	v = strings.TrimSpace(v)
	switch strings.ToLower(v) {
	case "":
		return 0, false
	case "on", "yes", "true", "y", "t", "1":
		return classAll, true
	case "off", "no", "false", "n", "f", "0":
		return 0, true
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n == 0 {
			return 0, true
		}
		return classAll, true
	}
	for _, name := range strings.Split(v, ",") {
		mask |= classNames[strings.ToLower(strings.TrimSpace(name))]
	}
	return mask, true
}

// wire builds one AMI message in its wire form. Values are written as they
// are: the fake answers what Asterisk would, including a bare CR that a
// client set in a variable (transcript 09p).
type wire struct{ b []byte }

func (w *wire) h(k, v string) *wire {
	w.b = append(w.b, k...)
	w.b = append(w.b, ':', ' ')
	w.b = append(w.b, v...)
	w.b = append(w.b, '\r', '\n')
	return w
}

func (w *wire) hi(k string, v int) *wire {
	w.b = append(w.b, k...)
	w.b = append(w.b, ':', ' ')
	w.b = strconv.AppendInt(w.b, int64(v), 10)
	w.b = append(w.b, '\r', '\n')
	return w
}

func (w *wire) done() []byte { return append(w.b, '\r', '\n') }

// actionID appends the ActionID header when the action carried one: no
// ActionID in, no ActionID out (README §4).
func (w *wire) actionID(m *ami.Message) *wire {
	if id, ok := m.Lookup("ActionID"); ok {
		w.h("ActionID", id)
	}
	return w
}

func newEvent(name, privilege string) *wire {
	w := &wire{b: make([]byte, 0, 640)}
	w.h("Event", name)
	if privilege != "" {
		w.h("Privilege", privilege)
	}
	return w
}

// response starts a Response to action m: Response, ActionID, then the
// caller's headers (Asterisk's astman_start_ack order).
func response(kind string, m *ami.Message) *wire {
	w := &wire{b: make([]byte, 0, 128)}
	w.h("Response", kind)
	return w.actionID(m)
}

func errorResponse(m *ami.Message, text string) []byte {
	return response("Error", m).h("Message", text).done()
}

func successResponse(m *ami.Message, text string) []byte {
	return response("Success", m).h("Message", text).done()
}

// channelBlock is Asterisk's ast_manager_build_channel_state_string_prefix:
// the snapshot of one channel, with a prefix (Dest, Spyer, LocalOne…).
func (w *wire) channelBlock(prefix string, c *channel) *wire {
	p := func(k string) string { return prefix + k }
	w.h(p("Channel"), c.name)
	w.hi(p("ChannelState"), c.state)
	w.h(p("ChannelStateDesc"), stateDesc(c.state))
	w.h(p("CallerIDNum"), orUnknown(c.cidNum))
	w.h(p("CallerIDName"), orUnknown(c.cidName))
	w.h(p("ConnectedLineNum"), orUnknown(c.connNum))
	w.h(p("ConnectedLineName"), orUnknown(c.connName))
	w.h(p("Language"), "en")
	w.h(p("AccountCode"), "")
	w.h(p("Context"), c.context)
	w.h(p("Exten"), c.exten)
	w.hi(p("Priority"), c.priority)
	w.h(p("Uniqueid"), c.uniqueid)
	w.h(p("Linkedid"), c.linkedid)
	return w
}

func (w *wire) bridgeBlock(b *bridge) *wire { return w.bridgeBlockPrefix("", b) }

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// Channel states (ast_channel_state) used by the model.
const (
	stateDown    = 0
	stateRing    = 4
	stateRinging = 5
	stateUp      = 6
	stateBusy    = 7
)

func stateDesc(s int) string {
	switch s {
	case stateDown:
		return "Down"
	case 1:
		return "Rsrvd"
	case 2:
		return "OffHook"
	case 3:
		return "Dialing"
	case stateRing:
		return "Ring"
	case stateRinging:
		return "Ringing"
	case stateUp:
		return "Up"
	case stateBusy:
		return "Busy"
	}
	return "Unknown"
}

// parseCallerID splits `"Desk 150" <150>`, `Spy 151 <151>` or `150`.
func parseCallerID(s string) (name, num string) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '<'); i >= 0 && strings.HasSuffix(s, ">") {
		num = s[i+1 : len(s)-1]
		name = strings.TrimSpace(s[:i])
		name = strings.TrimSuffix(strings.TrimPrefix(name, `"`), `"`)
		return name, num
	}
	if isDigits(strings.TrimPrefix(s, "+")) {
		return "", s
	}
	return s, ""
}
