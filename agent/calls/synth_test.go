package calls

import (
	"strconv"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Builders of capture-shaped AMI events (same headers, same order as the
// transcripts in protocol/ami/testdata/transcripts) for scenarios the
// captures do not cover: trunks, SIP phones, queues, transfers.

// chn is one Asterisk channel of a synthetic scenario.
type chn struct {
	name, uid, linked string
	cid, exten, ctx   string
	state             int
}

var stateDesc = map[int]string{0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}

func (c *chn) snapshot(m *ami.Message, prefix string) {
	m.Add(prefix+"Channel", c.name)
	m.Add(prefix+"ChannelState", strconv.Itoa(c.state))
	m.Add(prefix+"ChannelStateDesc", stateDesc[c.state])
	cid := c.cid
	if cid == "" {
		cid = "<unknown>"
	}
	m.Add(prefix+"CallerIDNum", cid)
	m.Add(prefix+"CallerIDName", "<unknown>")
	m.Add(prefix+"ConnectedLineNum", "<unknown>")
	m.Add(prefix+"ConnectedLineName", "<unknown>")
	m.Add(prefix+"Language", "en")
	m.Add(prefix+"AccountCode", "")
	m.Add(prefix+"Context", c.ctx)
	m.Add(prefix+"Exten", c.exten)
	m.Add(prefix+"Priority", "1")
	m.Add(prefix+"Uniqueid", c.uid)
	m.Add(prefix+"Linkedid", c.linked)
}

func evt(name string) *ami.Message {
	m := &ami.Message{}
	m.Add("Event", name)
	m.Add("Privilege", "call,all")
	return m
}

func newchannel(c *chn) *ami.Message {
	m := evt("Newchannel")
	c.snapshot(m, "")
	return m
}

func newstate(c *chn, state int) *ami.Message {
	c.state = state
	m := evt("Newstate")
	c.snapshot(m, "")
	return m
}

func dialBegin(src, dest *chn, dialString string) *ami.Message {
	m := evt("DialBegin")
	if src != nil {
		src.snapshot(m, "")
	}
	dest.snapshot(m, "Dest")
	m.Add("DialString", dialString)
	return m
}

func dialState(src, dest *chn, status string) *ami.Message {
	m := evt("DialState")
	if src != nil {
		src.snapshot(m, "")
	}
	dest.snapshot(m, "Dest")
	m.Add("DialStatus", status)
	return m
}

func dialEnd(src, dest *chn, status string) *ami.Message {
	m := evt("DialEnd")
	if src != nil {
		src.snapshot(m, "")
	}
	dest.snapshot(m, "Dest")
	m.Add("DialStatus", status)
	return m
}

func bridgeEnter(c *chn, bridge string, n int) *ami.Message {
	m := evt("BridgeEnter")
	bridgeHeaders(m, bridge, n)
	c.snapshot(m, "")
	return m
}

func bridgeLeave(c *chn, bridge string, n int) *ami.Message {
	m := evt("BridgeLeave")
	bridgeHeaders(m, bridge, n)
	c.snapshot(m, "")
	return m
}

func bridgeHeaders(m *ami.Message, bridge string, n int) {
	m.Add("BridgeUniqueid", bridge)
	m.Add("BridgeType", "basic")
	m.Add("BridgeTechnology", "simple_bridge")
	m.Add("BridgeCreator", "<unknown>")
	m.Add("BridgeName", "<unknown>")
	m.Add("BridgeNumChannels", strconv.Itoa(n))
	m.Add("BridgeVideoSourceMode", "none")
}

func hangupRequest(c *chn, cause int) *ami.Message {
	m := evt("HangupRequest")
	c.snapshot(m, "")
	m.Add("Cause", strconv.Itoa(cause))
	return m
}

func hangup(c *chn, cause int, text string) *ami.Message {
	m := evt("Hangup")
	c.snapshot(m, "")
	m.Add("Cause", strconv.Itoa(cause))
	m.Add("Cause-txt", text)
	return m
}

func cdr(c *chn, disposition string, billsec int) *ami.Message {
	m := evt("Cdr")
	m.Set("Privilege", "cdr,all")
	m.Add("AccountCode", "")
	m.Add("Source", c.cid)
	m.Add("Destination", c.exten)
	m.Add("DestinationContext", c.ctx)
	m.Add("CallerID", "")
	m.Add("Channel", c.name)
	m.Add("DestinationChannel", "")
	m.Add("LastApplication", "Dial")
	m.Add("LastData", "")
	m.Add("StartTime", "")
	m.Add("AnswerTime", "")
	m.Add("EndTime", "")
	m.Add("Duration", strconv.Itoa(billsec))
	m.Add("BillableSeconds", strconv.Itoa(billsec))
	m.Add("Disposition", disposition)
	m.Add("AMAFlags", "DOCUMENTATION")
	m.Add("UniqueID", c.uid)
	m.Add("UserField", "")
	return m
}

func cel(c *chn, name string) *ami.Message {
	m := evt("CEL")
	m.Add("EventName", name)
	m.Add("Channel", c.name)
	m.Add("UniqueID", c.uid)
	m.Add("LinkedID", c.linked)
	return m
}

// step is one message of a scenario, handled after the clock moved by wait.
type step struct {
	wait time.Duration
	msg  *ami.Message
}

// script turns messages and waits into steps: a time.Duration argument
// delays the next message by that much; messages not preceded by one
// follow 1 ms after the previous.
func script(items ...any) []step {
	var out []step
	wait := time.Millisecond
	for _, it := range items {
		switch v := it.(type) {
		case time.Duration:
			wait = v
		case *ami.Message:
			out = append(out, step{wait, v})
			wait = time.Millisecond
		}
	}
	return out
}

func messagesOf(steps []step) []*ami.Message {
	out := make([]*ami.Message, len(steps))
	for i, s := range steps {
		out[i] = s.msg
	}
	return out
}
