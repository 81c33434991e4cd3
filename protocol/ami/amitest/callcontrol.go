package amitest

import (
	"fmt"
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Call control (captures 12, 13, 16, 17 and 20): the actions the agent's
// transfer, park, DTMF and mute operations send, and the dialplan they
// look targets up in. Transfers are in transfer.go, parking in park.go,
// PlayDTMF and MuteAudio in dtmf.go.

func init() {
	addActions([]action{
		{"Atxfer", "Attended transfer.  (Priv: call,all)", (*session).actionAtxfer},
		{"BlindTransfer", "Blind transfer channel(s) to the given destination  (Priv: call,all)", (*session).actionBlindTransfer},
		{"CancelAtxfer", "Cancel an attended transfer.  (Priv: call,all)", (*session).actionCancelAtxfer},
		{"MuteAudio", "Mute an audio stream.  (Priv: system,all)", (*session).actionMuteAudio},
		{"Park", "Park a channel.  (Priv: call,all)", (*session).actionPark},
		{"ParkedCalls", "List parked calls.  (Priv: call,all)", (*session).actionParkedCalls},
		{"Parkinglots", "Get a list of parking lots  (Priv: call,all)", (*session).actionParkinglots},
		{"PlayDTMF", "Play DTMF signal on a specific channel.  (Priv: call,all)", (*session).actionPlayDTMF},
		{"Redirect", "Redirect (transfer) a call.  (Priv: call,all)", (*session).actionRedirect},
		{"ShowDialPlan", "Show dialplan contexts and extensions  (Priv: config,reporting,all)", (*session).actionShowDialPlan},
	})
}

// DialoutContext is the lab's context whose Dial has the transfer features
// on (Dial(Local/${EXTEN}@<Context>,,tT)), as in the captures 12-17.
const DialoutContext = "dialout"

// priority is one line of an extension.
type priority struct{ app, data string }

// planExten is one extension (or pattern) of a context.
type planExten struct {
	name  string
	prios []priority
}

var (
	phone    = []priority{{"NoOp", "internal phone ${EXTEN}"}, {"Answer", ""}, {"Wait", "600"}, {"Hangup", ""}}
	external = []priority{{"NoOp", "external number ${EXTEN}"}, {"Answer", ""}, {"Wait", "600"}, {"Hangup", ""}}
	// inofficePlan is the lab's [inoffice], in Asterisk's order (exact
	// extensions, then patterns, each sorted).
	inofficePlan = []planExten{
		{"5550000", []priority{{"NoOp", "rings forever, never answers"}, {"Ringing", ""}, {"Wait", "600"}, {"Hangup", ""}}},
		{"5550001", []priority{{"NoOp", "busy line"}, {"Busy", ""}}},
		{"5550002", []priority{{"NoOp", "congested line"}, {"Congestion", ""}}},
		{"busy", []priority{{"NoOp", "busy line"}, {"Busy", ""}}},
		{"congestion", []priority{{"NoOp", "congested line"}, {"Congestion", ""}}},
		{"noanswer", []priority{{"NoOp", "no answer"}, {"Ringing", ""}, {"Wait", "600"}, {"Hangup", ""}}},
		{"_+X.", external},
		{"_1XX", phone},
		{"_2XX", phone},
		{"_X.", external},
	}
)

// dialoutPlan is the lab's [dialout] for a model whose context is ctx.
func dialoutPlan(ctx string) []planExten {
	dial := []priority{{"Dial", "Local/${EXTEN}@" + ctx + ",,tT"}, {"Hangup", ""}}
	return []planExten{{"_+X.", dial}, {"_X.", dial}}
}

// extenMatch is Asterisk's extension match for the patterns the lab uses:
// a name without "_" matches itself; after "_", X is a digit, Z 1-9, N
// 2-9, "." one or more of anything, "!" zero or more, [..] a set, and
// anything else itself.
func extenMatch(pattern, exten string) bool {
	if !strings.HasPrefix(pattern, "_") {
		return pattern == exten
	}
	p := pattern[1:]
	i := 0
	for j := 0; j < len(p); j++ {
		switch c := p[j]; c {
		case '.':
			return i < len(exten)
		case '!':
			return true
		}
		if i >= len(exten) {
			return false
		}
		e := exten[i]
		switch c := p[j]; c {
		case 'X', 'x':
			if e < '0' || e > '9' {
				return false
			}
		case 'Z', 'z':
			if e < '1' || e > '9' {
				return false
			}
		case 'N', 'n':
			if e < '2' || e > '9' {
				return false
			}
		case '[':
			end := strings.IndexByte(p[j:], ']')
			if end < 0 || !strings.ContainsRune(p[j+1:j+end], rune(e)) {
				return false
			}
			j += end
		default:
			if c != e {
				return false
			}
		}
		i++
	}
	return i == len(exten)
}

// plan returns the extensions of context ctx, or nil when it does not
// exist. Outcomes set with SetOutcome are extensions of the model's
// context too (NoSuchExtension removes one). Callers hold s.mu.
func (s *Server) plan(ctx string) []planExten {
	switch {
	case strings.EqualFold(ctx, s.model.context):
		out := make([]planExten, 0, len(inofficePlan)+len(s.outcomes))
		for exten, o := range s.outcomes {
			if o.r != resultNoSuchExtension && o.r != resultDialplan && !s.builtinHas(exten) {
				out = append(out, planExten{exten, []priority{{"Answer", ""}, {"Wait", "600"}}})
			}
		}
		return append(out, inofficePlan...)
	case strings.EqualFold(ctx, DialoutContext):
		return dialoutPlan(s.model.context)
	}
	return nil
}

func (s *Server) builtinHas(exten string) bool {
	for _, e := range inofficePlan {
		if extenMatch(e.name, exten) {
			return true
		}
	}
	return false
}

// extenExists reports whether exten@ctx is in the dialplan, as a call
// would find it. Callers hold s.mu.
func (s *Server) extenExists(ctx, exten string) bool {
	if strings.EqualFold(ctx, s.model.context) {
		return s.outcomeFor(exten).r != resultNoSuchExtension
	}
	for _, e := range s.plan(ctx) {
		if extenMatch(e.name, exten) {
			return true
		}
	}
	return false
}

// actionShowDialPlan lists the extensions of Context matching Extension,
// as Asterisk's manager_show_dialplan does (capture 20b-d): an event list
// of ListDialplan items, or "Did not find context X" / "Did not find
// extension E@X".
func (c *session) actionShowDialPlan(m *ami.Message) bool {
	s := c.srv
	ctx, exten := m.Get("Context"), m.Get("Extension")
	s.mu.Lock()
	defer s.mu.Unlock()
	contexts := []string{s.model.context, DialoutContext}
	if ctx != "" {
		if s.plan(ctx) == nil {
			c.write(errorResponse(m, "Did not find context "+ctx))
			return false
		}
		contexts = []string{ctx}
	}
	type item struct {
		ctx string
		e   planExten
	}
	var items []item
	for _, cx := range contexts {
		for _, e := range s.plan(cx) {
			if exten == "" || extenMatch(e.name, exten) {
				items = append(items, item{cx, e})
			}
		}
	}
	if len(items) == 0 {
		c.write(errorResponse(m, fmt.Sprintf("Did not find extension %s@%s", exten, ctx)))
		return false
	}
	c.write(response("Success", m).h("EventList", "start").h("Message", "DialPlan list will follow").done())
	prios, seen := 0, map[string]bool{}
	for _, it := range items {
		seen[it.ctx] = true
		for i, p := range it.e.prios {
			w := newEvent("ListDialplan", "").actionID(m)
			w.h("Context", it.ctx).h("Extension", it.e.name).hi("Priority", i+1)
			w.h("Application", p.app).h("AppData", p.data).h("Registrar", "pbx_config")
			c.write(w.done())
			prios++
		}
	}
	w := newEvent("ShowDialPlanComplete", "").actionID(m)
	w.h("EventList", "Complete").hi("ListItems", prios).hi("ListExtensions", len(items))
	w.hi("ListPriorities", prios).hi("ListContexts", len(seen))
	c.write(w.done())
	return false
}

// enterDialplan runs the dialplan of an answered channel originated into
// Context/Exten: in the lab's dialout context it Dials the number with the
// transfer features on, as the CLI-originated calls of captures 12-17 do.
// Anything else waits (Wait(600)). Callers hold s.mu.
func (s *Server) enterDialplan(one *channel) {
	if !strings.EqualFold(one.context, DialoutContext) {
		return
	}
	one.priority = 1
	one.app, one.appData = "Dial", "Local/"+one.exten+"@"+s.model.context+",,tT"
	s.dial(one, one.appData)
}

// StartDialoutCall places the call the captures 12-17 set up through the
// CLI (channel originate Local/<from>@<ctx> extension <to>@dialout):
// Local/<from> answers and Dials Local/<to> with the transfer features on,
// so Atxfer works on it. It returns the call's linkedid.
func (s *Server) StartDialoutCall(from, to string) (linkedid string, err error) {
	if from == "" || to == "" || strings.ContainsAny(from+to, "\r\n/@,") {
		return "", fmt.Errorf("amitest: start call %q -> %q: extensions must be non-empty without / @ , CR LF", from, to)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return "", ErrClosed
	}
	o := &origination{
		dialString: "Local/" + from + "@" + s.model.context,
		exten:      to,
		ctx:        DialoutContext,
		priority:   1,
		timeout:    s.cfg.OriginateTimeout,
	}
	s.placeOrigination(o)
	if o.leg == nil {
		return "", fmt.Errorf("amitest: start call %q -> %q: not placed", from, to)
	}
	return o.leg.one.linkedid, nil
}

// bridgeBlockPrefix is a bridge snapshot with a prefix (OrigBridge…,
// SecondBridge… in AttendedTransfer).
func (w *wire) bridgeBlockPrefix(prefix string, b *bridge) *wire {
	typ, tech, creator, name := "basic", "simple_bridge", "<unknown>", "<unknown>"
	if b.lot != "" {
		typ, tech, creator, name = "parking", "holding_bridge", "Parking", b.lot
	}
	w.h(prefix+"BridgeUniqueid", b.id)
	w.h(prefix+"BridgeType", typ)
	w.h(prefix+"BridgeTechnology", tech)
	w.h(prefix+"BridgeCreator", creator)
	w.h(prefix+"BridgeName", name)
	w.hi(prefix+"BridgeNumChannels", len(b.members))
	w.h(prefix+"BridgeVideoSourceMode", "none")
	return w
}

// peerOf is the other member of c's two-party bridge, or nil.
func peerOf(c *channel) *channel {
	if c.bridge == nil {
		return nil
	}
	for _, x := range c.bridge.members {
		if x != c {
			return x
		}
	}
	return nil
}
