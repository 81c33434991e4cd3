package amitest

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

type handlerFunc func(c *session, m *ami.Message) (stop bool)

// action is one AMI action the fake implements, with the one-line
// description ListCommands prints (copied from transcript 11).
type action struct {
	name, desc string
	fn         handlerFunc
}

// actions are the AMI actions the fake implements, keyed by lower-case
// name (Asterisk matches action names case-insensitively). Each file's
// init adds its own with addActions.
var actions = map[string]action{}

func addActions(list []action) {
	for _, a := range list {
		actions[strings.ToLower(a.name)] = a
	}
}

func init() {
	add := func(name, desc string, fn handlerFunc) { addActions([]action{{name, desc, fn}}) }
	add("BridgeInfo", "Get information about a bridge.  (Priv: <none>)", (*session).actionBridgeInfo)
	add("BridgeList", "Get a list of bridges in the system.  (Priv: <none>)", (*session).actionBridgeList)
	add("Challenge", "Generate Challenge for MD5 Auth.  (Priv: <none>)", (*session).actionChallenge)
	add("Command", "Execute Asterisk CLI Command.  (Priv: command,all)", (*session).actionCommand)
	add("CoreSettings", "Show PBX core settings (version etc).  (Priv: system,reporting,all)", (*session).actionCoreSettings)
	add("CoreShowChannels", "List currently active channels.  (Priv: system,reporting,all)", (*session).actionCoreShowChannels)
	add("CoreStatus", "Show PBX core status variables.  (Priv: system,reporting,all)", (*session).actionCoreStatus)
	add("Events", "Control Event Flow.  (Priv: <none>)", (*session).actionEvents)
	add("Getvar", "Gets a channel variable or function value.  (Priv: call,reporting,all)", (*session).actionGetvar)
	add("Hangup", "Hangup channel.  (Priv: system,call,all)", (*session).actionHangup)
	add("ListCommands", "List available manager commands.  (Priv: <none>)", (*session).actionListCommands)
	add("Login", "Login Manager.  (Priv: <none>)", (*session).actionLogin)
	add("Logoff", "Logoff Manager.  (Priv: <none>)", (*session).actionLogoff)
	add("Originate", "Originate a call.  (Priv: originate,all)", (*session).actionOriginate)
	add("Ping", "Keepalive command.  (Priv: <none>)", (*session).actionPing)
	add("Setvar", "Sets a channel variable or function value.  (Priv: call,all)", (*session).actionSetvar)
	add("Status", "List channel status.  (Priv: system,call,reporting,all)", (*session).actionStatus)
	add("UserEvent", "Send an arbitrary event.  (Priv: user,all)", (*session).actionUserEvent)
}

// handle runs one received message the way Asterisk's process_message
// does; it reports whether the session must end.
func (c *session) handle(m *ami.Message) bool {
	if len(m.Headers) > 0 {
		c.srv.record(m)
	}
	name := actionName(m)
	if name == "" {
		c.srv.mu.Lock()
		c.securityEvent("RequestBadFormat", "Error", "RequestType", "Action: NONE")
		c.srv.mu.Unlock()
		c.write(errorResponse(m, "Missing action in request"))
		return false
	}
	key := strings.ToLower(name)
	c.srv.mu.Lock()
	authed := c.authenticated
	c.srv.mu.Unlock()
	if !authed && key != "login" && key != "logoff" && key != "challenge" {
		c.write(errorResponse(m, "Permission denied"))
		return false
	}
	a, ok := actions[key]
	if !ok {
		c.srv.mu.Lock()
		c.securityEvent("RequestBadFormat", "Error", "RequestType", "Action: "+name)
		c.srv.mu.Unlock()
		c.write(errorResponse(m, fmt.Sprintf("Invalid/unknown command: %s. Use Action: ListCommands to show available commands.", name)))
		return false
	}
	if d := c.srv.actionDelay(key); d > 0 {
		c.srv.wg.Add(1)
		go func() {
			defer c.srv.wg.Done()
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-c.srv.done:
				return
			}
			if a.fn(c, m) {
				c.closeAfterFlush()
			}
		}()
		return false
	}
	return a.fn(c, m)
}

// require checks headers an action cannot do without, given as pairs of
// header and the Error message Asterisk answers when it is missing or
// empty, in the order the action checks them. It answers m with the first
// that fails and reports whether all were there.
func (c *session) require(m *ami.Message, headerMessage ...string) bool {
	for i := 0; i+1 < len(headerMessage); i += 2 {
		if m.Get(headerMessage[i]) == "" {
			c.write(errorResponse(m, headerMessage[i+1]))
			return false
		}
	}
	return true
}

// actionName is the first non-empty Action header, untrimmed: Asterisk
// skips empty ones and keeps trailing blanks ("Ping  " is unknown, 09i).
func actionName(m *ami.Message) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, "Action") && h.Value != "" {
			return h.Value
		}
	}
	return ""
}

// securityEvent broadcasts a security-class event about this session
// (RequestBadFormat, SuccessfulAuth), with the fields of transcript 09/01.
// Callers hold srv.mu.
func (c *session) securityEvent(name, severity string, extra ...string) {
	now := c.srv.cfg.Now()
	w := newEvent(name, "security,all")
	w.h("EventTV", eventTV(now))
	w.h("Severity", severity)
	w.h("Service", "AMI")
	w.h("EventVersion", "1")
	if name == "SuccessfulAuth" {
		w.h("AccountID", c.username)
	}
	w.h("SessionID", c.sessionID)
	w.h("LocalAddress", c.localAddr)
	w.h("RemoteAddress", c.remoteAddr)
	for i := 0; i+1 < len(extra); i += 2 {
		w.h(extra[i], extra[i+1])
	}
	w.h("SessionTV", eventTV(c.sessionTV))
	if name != "SuccessfulAuth" {
		w.h("AccountID", c.username)
	}
	c.srv.emit(classSecurity, w.done())
}

func eventTV(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000-0700")
}

func (c *session) actionLogin(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	if c.authenticated {
		s.mu.Unlock()
		c.write(successResponse(m, "Already authenticated"))
		return false
	}
	user := m.Get("Username")
	secret, known := s.cfg.Users[user]
	ok := known
	if strings.EqualFold(m.Get("AuthType"), "md5") {
		sum := md5.Sum([]byte(c.challenge + secret))
		ok = ok && c.challenge != "" && strings.EqualFold(m.Get("Key"), hex.EncodeToString(sum[:]))
	} else {
		ok = ok && m.Get("Secret") == secret
	}
	if !ok {
		s.mu.Unlock()
		// Asterisk sleeps before answering a failed login, then hangs up.
		if d := s.cfg.AuthFailDelay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return true
			}
		}
		c.write(errorResponse(m, "Authentication failed"))
		c.closeAfterFlush()
		return true
	}
	c.authenticated = true
	c.username = user
	mask := classAll
	if v, ok := parseEventMask(m.Get("Events")); ok {
		mask = v
	}
	c.setMask(mask)
	c.write(successResponse(m, "Authentication accepted"))
	if mask&classSystem != 0 {
		up := int(s.cfg.Now().Sub(s.startTime).Seconds())
		c.write(newEvent("FullyBooted", "system,all").hi("Uptime", up).hi("LastReload", up).h("Status", "Fully Booted").done())
	}
	c.securityEvent("SuccessfulAuth", "Informational", "UsingPassword", "0")
	s.mu.Unlock()
	return false
}

func (c *session) actionChallenge(m *ami.Message) bool {
	if !strings.EqualFold(m.Get("AuthType"), "md5") {
		c.write(errorResponse(m, "Must specify AuthType"))
		return false
	}
	c.srv.mu.Lock()
	if c.challenge == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.challenge = fmt.Sprint(binary.BigEndian.Uint32(b[:]) % 1000000000)
	}
	ch := c.challenge
	c.srv.mu.Unlock()
	c.write(response("Success", m).h("Challenge", ch).done())
	return false
}

func (c *session) actionLogoff(m *ami.Message) bool {
	c.write(response("Goodbye", m).h("Message", "Thanks for all the fish.").done())
	c.closeAfterFlush()
	return true
}

func (c *session) actionPing(m *ami.Message) bool {
	now := c.srv.cfg.Now()
	ts := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
	c.write(response("Success", m).h("Ping", "Pong").h("Timestamp", ts).done())
	return false
}

func (c *session) actionEvents(m *ami.Message) bool {
	c.mu.Lock()
	if v, ok := parseEventMask(m.Get("EventMask")); ok {
		c.mask = v
	}
	mask := c.mask
	c.mu.Unlock()
	state := "On"
	if mask == 0 {
		state = "Off"
	}
	c.write(response("Success", m).h("Events", state).done())
	return false
}

func (c *session) actionUserEvent(m *ami.Message) bool {
	name := m.Get("UserEvent")
	if name == "" {
		c.write(errorResponse(m, "UserEvent header missing"))
		return false
	}
	w := newEvent("UserEvent", "user,all").h("UserEvent", name)
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, "Action") || strings.EqualFold(h.Key, "UserEvent") {
			continue
		}
		w.h(h.Key, h.Value)
	}
	c.write(successResponse(m, "Event Sent"))
	c.srv.mu.Lock()
	c.srv.emit(classUser, w.done())
	c.srv.mu.Unlock()
	return false
}

func (c *session) actionListCommands(m *ami.Message) bool {
	w := response("Success", m)
	names := make([]string, 0, len(actions))
	for _, a := range actions {
		names = append(names, a.name)
	}
	sortStrings(names)
	for _, n := range names {
		w.h(n, actions[strings.ToLower(n)].desc)
	}
	c.write(w.done())
	return false
}

func (c *session) actionCoreSettings(m *ami.Message) bool {
	w := response("Success", m)
	w.h("AMIversion", "11.0.0").h("AsteriskVersion", c.srv.cfg.AsteriskVersion).h("SystemName", "")
	w.h("CoreMaxCalls", "0").h("CoreMaxLoadAvg", "0.000000").h("CoreRunUser", "root").h("CoreRunGroup", "root")
	w.h("CoreMaxFilehandles", "0").h("CoreRealTimeEnabled", "No").h("CoreCDRenabled", "Yes")
	w.h("CoreHTTPenabled", "No").h("SoundsSearchCustomDir", "No")
	c.write(w.done())
	return false
}

func (c *session) actionCoreStatus(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	cur, processed := s.model.activeCalls(), s.model.processedCalls
	s.mu.Unlock()
	st := s.startTime
	w := response("Success", m)
	w.h("CoreStartupDate", st.Format("2006-01-02")).h("CoreStartupTime", st.Format("15:04:05"))
	w.h("CoreReloadDate", st.Format("2006-01-02")).h("CoreReloadTime", st.Format("15:04:05"))
	w.hi("CoreCurrentCalls", cur).hi("CoreProcessedCalls", processed)
	c.write(w.done())
	return false
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && strings.ToLower(a[j]) < strings.ToLower(a[j-1]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
