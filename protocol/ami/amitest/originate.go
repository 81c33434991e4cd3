package amitest

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// actionOriginate checks an Originate in the order of Asterisk's
// action_originate (transcripts 04 and 09b–e), then places the call.
// Async: "Originate successfully queued" at once, OriginateResponse later.
// Sync: the Response waits for the outcome, and this session's events
// wait behind it (transcript 04f).
func (c *session) actionOriginate(m *ami.Message) bool {
	s := c.srv
	name := m.Get("Channel")
	if name == "" {
		c.write(errorResponse(m, "Channel not specified"))
		return false
	}
	pri := 0
	if v := m.Get("Priority"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			c.write(errorResponse(m, "Invalid priority"))
			return false
		}
		pri = n
	}
	timeout := s.cfg.OriginateTimeout
	if v := m.Get("Timeout"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			c.write(errorResponse(m, "Invalid timeout"))
			return false
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Millisecond
		}
	}
	if !strings.Contains(name, "/") {
		c.write(errorResponse(m, "Invalid channel"))
		return false
	}
	exten, ctx, app := m.Get("Exten"), m.Get("Context"), m.Get("Application")
	if pri != 0 {
		s.mu.Lock()
		exists := s.extenExists(ctx, exten)
		s.mu.Unlock()
		if !exists {
			c.write(errorResponse(m, "Extension does not exist."))
			return false
		}
	}
	if app == "" && (exten == "" || ctx == "" || pri == 0) {
		c.write(errorResponse(m, "Originate with 'Exten' requires 'Context' and 'Priority'"))
		return false
	}
	o := &origination{
		dialString: name,
		app:        app,
		data:       m.Get("Data"),
		exten:      exten,
		ctx:        ctx,
		priority:   pri,
		timeout:    timeout,
		event:      true,
		ids:        [2]string{m.Get("ChannelId"), m.Get("OtherChannelId")},
	}
	o.actionID, o.hasActionID = m.Lookup("ActionID")
	o.cidName, o.cidNum = parseCallerID(m.Get("CallerID"))
	for _, v := range m.Values("Variable") {
		for _, kv := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok && k != "" {
				o.vars = append(o.vars, ami.Header{Key: k, Value: val})
			}
		}
	}

	if astTrue(m.Get("Async")) {
		c.write(successResponse(m, "Originate successfully queued"))
		s.mu.Lock()
		s.placeOrigination(o)
		s.mu.Unlock()
		return false
	}

	o.event = false
	o.result = make(chan origResult, 1)
	s.mu.Lock()
	s.placeOrigination(o)
	s.mu.Unlock()
	var res origResult
	select {
	case res = <-o.result:
	case <-s.done:
		return true
	}
	if res.ok {
		c.write(successResponse(m, "Originate successfully queued"))
	} else {
		c.write(errorResponse(m, "Originate failed"))
	}
	return false
}

// astTrue is Asterisk's ast_true.
func astTrue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}
