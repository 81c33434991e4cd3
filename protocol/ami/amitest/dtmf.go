package amitest

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// defaultDTMFMillis is PlayDTMF's digit length without Duration.
const defaultDTMFMillis = 100

// actionPlayDTMF plays the first character of Digit on Channel (captures
// 16, 20p-q). Sent (the default), it holds this session for the digit's
// duration before it answers, as Asterisk's session thread does: actions
// sent meanwhile on the same connection wait (README item 29). The digit
// then shows on the channel's Local ;2 half as received. With Receive it
// is queued as if the channel's own party pressed it, and the answer
// comes at once.
func (c *session) actionPlayDTMF(m *ami.Message) bool {
	s := c.srv
	name, digit := m.Get("Channel"), m.Get("Digit")
	s.mu.Lock()
	ch := s.model.find(name)
	s.mu.Unlock()
	ms := defaultDTMFMillis
	switch {
	case name == "" || ch == nil:
		c.write(errorResponse(m, "Channel not found"))
		return false
	case digit == "":
		c.write(errorResponse(m, "No digit specified"))
		return false
	}
	if v := m.Get("Duration"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			c.write(errorResponse(m, "Could not convert Duration parameter"))
			return false
		}
		ms = n
	}
	digit = digit[:1]
	if astTrue(m.Get("Receive")) {
		c.write(successResponse(m, "DTMF successfully queued"))
		s.mu.Lock()
		if !ch.gone {
			// As if its party pressed it: on through the bridge (16c).
			s.leakDigits(ch, digit)
		}
		s.mu.Unlock()
		return false
	}
	if ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return true
		}
	}
	c.write(successResponse(m, "DTMF successfully queued"))
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch.gone {
		return false
	}
	to := ch
	if ch.partner != nil && ch.half == 1 {
		to = ch.partner // what reaches the ;1 half is read by its ;2 half
	}
	s.emitDTMF("DTMFBegin", to, digit, "Received", -1)
	s.emitDTMF("DTMFEnd", to, digit, "Received", ms)
	return false
}

// actionMuteAudio mutes or unmutes a channel's audio (captures 17 and
// 20r-t): Direction in, out or all (lower case only), State any truth
// word. Success carries no Message and no event follows.
func (c *session) actionMuteAudio(m *ami.Message) bool {
	s := c.srv
	name, dir := m.Get("Channel"), m.Get("Direction")
	if !c.require(m, "Channel", "Channel not specified", "Direction", "Direction not specified", "State", "State not specified") {
		return false
	}
	s.mu.Lock()
	ch := s.model.find(name)
	s.mu.Unlock()
	if ch == nil {
		c.write(errorResponse(m, "No such channel"))
		return false
	}
	switch dir {
	case "in", "out", "all":
	default:
		c.write(errorResponse(m, "Failed to mute/unmute stream"))
		return false
	}
	c.write(response("Success", m).done())
	return false
}
