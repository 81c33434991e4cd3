package amitest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func (c *session) actionGetvar(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Variable")
	if name == "" {
		c.write(errorResponse(m, "No variable specified"))
		return false
	}
	s.mu.Lock()
	var value string
	if chName := m.Get("Channel"); chName != "" {
		ch := s.model.find(chName)
		if ch == nil {
			s.mu.Unlock()
			c.write(errorResponse(m, "No such channel"))
			return false
		}
		value = s.channelValue(ch, name)
	} else {
		value = s.globalValue(name)
	}
	s.mu.Unlock()
	c.write(response("Success", m).h("Variable", name).h("Value", value).done())
	return false
}

// channelValue reads a channel variable or one of the few dialplan
// functions the fake knows (transcript 06).
func (s *Server) channelValue(ch *channel, name string) string {
	switch strings.ToUpper(name) {
	case "CALLERID(NUM)":
		return ch.cidNum
	case "CALLERID(NAME)":
		return ch.cidName
	case "CHANNEL(STATE)":
		return stateDesc(ch.state)
	case "CHANNEL(NAME)", "CHANNEL":
		return ch.name
	case "CHANNEL(UNIQUEID)", "UNIQUEID":
		return ch.uniqueid
	case "CHANNEL(LINKEDID)":
		return ch.linkedid
	case "CONTEXT":
		return ch.context
	case "EXTEN":
		return ch.exten
	}
	if v, ok := ch.getVar(name); ok {
		return v
	}
	return s.globalValue(name)
}

func (s *Server) globalValue(name string) string {
	if strings.EqualFold(name, "EPOCH") {
		return strconv.FormatInt(s.cfg.Now().Unix(), 10)
	}
	return s.globals[name]
}

func (c *session) actionSetvar(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Variable")
	if name == "" {
		c.write(errorResponse(m, "No variable specified"))
		return false
	}
	value := m.Get("Value")
	s.mu.Lock()
	defer s.mu.Unlock()
	chName := m.Get("Channel")
	if chName == "" {
		s.globals[name] = value
		c.write(successResponse(m, "Variable Set"))
		return false
	}
	ch := s.model.find(chName)
	if ch == nil {
		c.write(errorResponse(m, "No such channel"))
		return false
	}
	ch.setVar(name, value)
	c.write(successResponse(m, "Variable Set"))
	if !strings.Contains(name, "(") {
		// Writing a function (FEATUREMAP(atxfer), capture 13e) sets no
		// variable: no VarSet.
		s.emitVarSet(ch, name, value)
	}
	return false
}

// actionStatus lists one or every channel; the item carries Privilege:
// Call and its ActionID last, after the Variable lines (README §10).
func (c *session) actionStatus(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*channel
	if name := m.Get("Channel"); name != "" {
		ch := s.model.find(name)
		if ch == nil {
			c.write(errorResponse(m, "No such channel"))
			return false
		}
		list = []*channel{ch}
	} else {
		list = append(list, s.model.chans...)
	}
	var vars []string
	if v := m.Get("Variables"); v != "" {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				vars = append(vars, name)
			}
		}
	}
	c.write(response("Success", m).h("EventList", "start").h("Message", "Channel status will follow").done())
	now := s.cfg.Now()
	for _, ch := range list {
		w := newEvent("Status", "Call").channelBlock("", ch)
		w.h("Type", "Local").h("DNID", "")
		w.h("EffectiveConnectedLineNum", orUnknown(ch.connNum)).h("EffectiveConnectedLineName", orUnknown(ch.connName))
		w.h("TimeToHangup", "0").h("BridgeID", bridgeID(ch))
		w.h("Application", ch.app).h("Data", ch.appData)
		w.h("Nativeformats", "(slin)").h("Readformat", "slin").h("Readtrans", "")
		w.h("Writeformat", "slin").h("Writetrans", "").h("Callgroup", "0").h("Pickupgroup", "0")
		w.hi("Seconds", int(now.Sub(ch.created).Seconds()))
		for _, name := range vars {
			w.h("Variable", name+"="+s.channelValue(ch, name))
		}
		c.write(w.actionID(m).done())
	}
	w := newEvent("StatusComplete", "").actionID(m)
	w.h("EventList", "Complete").hi("ListItems", len(list)).hi("Items", len(list))
	c.write(w.done())
	return false
}

func bridgeID(ch *channel) string {
	if ch.bridge == nil {
		return ""
	}
	return ch.bridge.id
}

func (c *session) actionCoreShowChannels(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.write(response("Success", m).h("EventList", "start").h("Message", "Channels will follow").done())
	now := s.cfg.Now()
	for _, ch := range s.model.chans {
		w := newEvent("CoreShowChannel", "").actionID(m).channelBlock("", ch)
		w.h("Application", ch.app).h("ApplicationData", ch.appData)
		w.h("Duration", hms(now.Sub(ch.created))).h("BridgeId", bridgeID(ch))
		c.write(w.done())
	}
	w := newEvent("CoreShowChannelsComplete", "").actionID(m)
	c.write(w.h("EventList", "Complete").hi("ListItems", len(s.model.chans)).done())
	return false
}

func hms(d time.Duration) string {
	sec := int(d.Seconds())
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

func (c *session) actionBridgeList(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	c.write(response("Success", m).h("EventList", "start").h("Message", "Bridge listing will follow").done())
	for _, b := range s.model.bridges {
		c.write(newEvent("BridgeListItem", "").actionID(m).bridgeBlock(b).done())
	}
	w := newEvent("BridgeListComplete", "").actionID(m)
	c.write(w.h("EventList", "Complete").hi("ListItems", len(s.model.bridges)).done())
	return false
}

func (c *session) actionBridgeInfo(m *ami.Message) bool {
	s := c.srv
	id := m.Get("BridgeUniqueid")
	if id == "" {
		c.write(errorResponse(m, "Bridge identifier not provided"))
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.model.findBridge(id)
	if b == nil {
		c.write(errorResponse(m, "Bridge not found"))
		return false
	}
	c.write(response("Success", m).h("EventList", "start").h("Message", "Bridge channel listing will follow").done())
	for _, ch := range b.members {
		c.write(newEvent("BridgeInfoChannel", "").actionID(m).channelBlock("", ch).done())
	}
	w := newEvent("BridgeInfoComplete", "").actionID(m)
	c.write(w.h("EventList", "Complete").hi("ListItems", len(b.members)).bridgeBlock(b).done())
	return false
}

// actionHangup hangs up one channel by name (or uniqueid), or every
// channel matching /regex/ as an event list (transcript 08). A Cause that
// is not a number is ignored, like Asterisk does.
func (c *session) actionHangup(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Channel")
	if name == "" {
		c.write(errorResponse(m, "No channel specified"))
		return false
	}
	cause := 0
	if n, err := strconv.Atoi(strings.TrimSpace(m.Get("Cause"))); err == nil && n > 0 && n < 128 {
		cause = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(name) >= 2 && name[0] == '/' && name[len(name)-1] == '/' {
		re, err := regexp.Compile(name[1 : len(name)-1])
		if err != nil {
			c.write(errorResponse(m, "Regex compile failed on: "+name))
			return false
		}
		var matched []*channel
		for _, ch := range s.model.chans {
			if re.MatchString(ch.name) {
				matched = append(matched, ch)
			}
		}
		c.write(response("Success", m).h("EventList", "start").h("Message", "Channels hung up will follow").done())
		for _, ch := range matched {
			c.write(newEvent("ChannelHungup", "").h("Channel", ch.name).actionID(m).done())
		}
		w := newEvent("ChannelsHungupListComplete", "").actionID(m)
		c.write(w.h("EventList", "Complete").hi("ListItems", len(matched)).done())
		for _, ch := range matched {
			if !ch.gone {
				s.requestHangup(ch, cause)
			}
		}
		return false
	}
	ch := s.model.find(name)
	if ch == nil {
		c.write(errorResponse(m, "No such channel"))
		return false
	}
	c.write(successResponse(m, "Channel Hungup"))
	s.requestHangup(ch, cause)
	return false
}

// Command output, as the CLI of transcript 11 prints it.
const (
	cliVersionFmt  = "Asterisk %s built by root @ vm on a x86_64 running Linux on 2026-11-22 08:32:54 UTC"
	cliChannelsFmt = "%-64.64s %-32.32s %-7.7s %-30.30s"
)

func (c *session) actionCommand(m *ami.Message) bool {
	s := c.srv
	cmd := strings.Join(strings.Fields(m.Get("Command")), " ")
	var out []string
	switch strings.ToLower(cmd) {
	case "core show version":
		out = []string{fmt.Sprintf(cliVersionFmt, s.cfg.AsteriskVersion)}
	case "core show channels":
		s.mu.Lock()
		out = append(out, fmt.Sprintf(cliChannelsFmt, "Channel", "Location", "State", "Application(Data)"))
		for _, ch := range s.model.chans {
			loc := "(None)"
			if ch.exten != "" {
				loc = fmt.Sprintf("%s@%s:%d", ch.exten, ch.context, ch.priority)
			}
			app := "(None)"
			if ch.app != "" {
				app = ch.app + "(" + ch.appData + ")"
			}
			out = append(out, fmt.Sprintf(cliChannelsFmt, ch.name, loc, stateDesc(ch.state), app))
		}
		n, calls, processed := len(s.model.chans), s.model.activeCalls(), s.model.processedCalls
		s.mu.Unlock()
		out = append(out, plural(n, "active channel", "active channels"),
			plural(calls, "active call", "active calls"),
			plural(processed, "call processed", "calls processed"))
	default:
		words := strings.Fields(cmd)
		hint := strings.Join(words[:min(2, len(words))], " ")
		w := response("Error", m).h("Message", "Command output follows")
		w.h("Output", fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)", cmd, hint))
		c.write(w.done())
		return false
	}
	w := response("Success", m).h("Message", "Command output follows")
	for _, line := range out {
		w.h("Output", line)
	}
	c.write(w.done())
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
