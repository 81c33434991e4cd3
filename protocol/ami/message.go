package ami

import (
	"strings"
)

// Header is one "Key: Value" line of a message.
type Header struct {
	Key   string
	Value string
}

// Message is one AMI packet: an action we send, or a response or event we
// receive. Headers keep their wire order and duplicates (Variable, Output,
// ChanVariable…); lookups are case-insensitive and the first match wins,
// as in Asterisk.
type Message struct {
	Headers []Header
}

// NewAction returns an action message. kv are key/value pairs appended in
// order after the Action header.
func NewAction(name string, kv ...string) *Message {
	m := &Message{Headers: make([]Header, 0, 1+len(kv)/2+2)}
	m.Add("Action", name)
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return m
}

// Add appends a header, keeping any existing one with the same key.
func (m *Message) Add(key, value string) *Message {
	m.Headers = append(m.Headers, Header{Key: key, Value: value})
	return m
}

// Set replaces the value of the first header named key (case-insensitive),
// or appends it.
func (m *Message) Set(key, value string) *Message {
	for i := range m.Headers {
		if strings.EqualFold(m.Headers[i].Key, key) {
			m.Headers[i].Value = value
			return m
		}
	}
	return m.Add(key, value)
}

// Del removes every header named key.
func (m *Message) Del(key string) {
	out := m.Headers[:0]
	for _, h := range m.Headers {
		if !strings.EqualFold(h.Key, key) {
			out = append(out, h)
		}
	}
	m.Headers = out
}

// Lookup returns the value of the first header named key.
func (m *Message) Lookup(key string) (string, bool) {
	if m == nil {
		return "", false
	}
	for _, h := range m.Headers {
		if len(h.Key) == len(key) && strings.EqualFold(h.Key, key) {
			return h.Value, true
		}
	}
	return "", false
}

// Get returns the value of the first header named key, or "".
func (m *Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Values returns every value of headers named key, in order.
func (m *Message) Values(key string) []string {
	var out []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			out = append(out, h.Value)
		}
	}
	return out
}

// Action is the value of the Action header (actions we send).
func (m *Message) Action() string { return m.Get("Action") }

// Event is the value of the Event header; empty for responses.
func (m *Message) Event() string { return m.Get("Event") }

// Response is the value of the Response header: Success, Error, Goodbye,
// Follows; empty for events.
func (m *Message) Response() string { return m.Get("Response") }

// ActionID is the value of the ActionID header.
func (m *Message) ActionID() string { return m.Get("ActionID") }

// IsEvent reports whether the message is an event.
func (m *Message) IsEvent() bool { _, ok := m.Lookup("Event"); return ok }

// IsResponse reports whether the message is a response to an action.
func (m *Message) IsResponse() bool { _, ok := m.Lookup("Response"); return ok }

// Clone returns a deep copy, safe to modify.
func (m *Message) Clone() *Message {
	c := &Message{Headers: make([]Header, len(m.Headers))}
	copy(c.Headers, m.Headers)
	return c
}

// String renders the message as it would appear on the wire, for logs and
// tests. It does not validate; use AppendWire before sending.
func (m *Message) String() string {
	var b strings.Builder
	for _, h := range m.Headers {
		b.WriteString(h.Key)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}
