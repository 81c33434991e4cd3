package ops

import (
	"strconv"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// originateCall is a validated OriginateArgs.
type originateCall struct {
	From, To  string
	CallerID  string // rendered, "" for none
	Timeout   time.Duration
	Variables []variable
	CallID    string // "" when the agent must generate one
}

func (l Limits) parseOriginate(a protocol.OriginateArgs) (originateCall, error) {
	var c originateCall
	var err error
	if err = l.checkNumber("from", a.From); err != nil {
		return c, err
	}
	if err = l.checkNumber("to", a.To); err != nil {
		return c, err
	}
	if c.CallerID, err = l.callerID("caller_id", a.CallerID); err != nil {
		return c, err
	}
	if c.Timeout, err = l.timeout(a.TimeoutS); err != nil {
		return c, err
	}
	if c.Variables, err = l.variables(a.Variables); err != nil {
		return c, err
	}
	if a.CallID != "" {
		if err = l.checkCallID("call_id", a.CallID); err != nil {
			return c, err
		}
	}
	c.From, c.To, c.CallID = a.From, a.To, a.CallID
	return c, nil
}

// localDial is the dial string of extension or number n in context.
func localDial(n, context string) string { return "Local/" + n + "@" + context }

// otherChannelID names the ;2 half of the Local channel we originate. It
// must be unique too, and "<id>-2" keeps to the call-id alphabet.
func otherChannelID(callID string) string { return callID + "-2" }

// originateAction builds the Originate that rings channel and, once it
// answers, runs app(data). ChannelId fixes the first leg's uniqueid before
// anything rings, so the caller learns the call's id at once.
func originateAction(channel, app, data, callerID string, timeout time.Duration, callID string, vars []variable) *ami.Message {
	m := ami.NewAction("Originate",
		"Channel", channel,
		"Application", app,
		"Data", data,
	)
	if callerID != "" {
		m.Add("CallerID", callerID)
	}
	m.Add("Timeout", strconv.FormatInt(timeout.Milliseconds(), 10))
	m.Add("Async", "true")
	m.Add("ChannelId", callID)
	m.Add("OtherChannelId", otherChannelID(callID))
	// One header per variable: several name=value pairs in one header
	// are split by Asterisk's argument parser (see variables).
	for _, v := range vars {
		m.Add("Variable", v.Name+"="+v.Value)
	}
	return m
}

func (c originateCall) action(context, callID string) *ami.Message {
	return originateAction(localDial(c.From, context), "Dial", localDial(c.To, context),
		c.CallerID, c.Timeout, callID, c.Variables)
}

// monitorCall is a validated MonitorArgs.
type monitorCall struct {
	Options  string // ChanSpy options
	Target   string
	From     string
	CallerID string
	Timeout  time.Duration
}

func (l Limits) parseMonitor(a protocol.MonitorArgs) (monitorCall, error) {
	var c monitorCall
	var err error
	opts, ok := chanSpyOptions[a.Mode]
	if !ok {
		return c, invalid("mode", "must be %s, %s or %s", protocol.MonitorSpy, protocol.MonitorWhisper, protocol.MonitorBarge)
	}
	if err = l.checkNumber("target", a.Target); err != nil {
		return c, err
	}
	if err = l.checkNumber("from", a.From); err != nil {
		return c, err
	}
	if a.From == a.Target {
		return c, invalid("from", "is the target itself")
	}
	if c.CallerID, err = l.callerID("caller_id", a.CallerID); err != nil {
		return c, err
	}
	if c.Timeout, err = l.timeout(a.TimeoutS); err != nil {
		return c, err
	}
	c.Options, c.Target, c.From = opts, a.Target, a.From
	return c, nil
}

func (c monitorCall) action(context, prefix, callID string) *ami.Message {
	return originateAction(localDial(c.From, context), "ChanSpy", prefix+","+c.Options,
		c.CallerID, c.Timeout, callID, nil)
}

// hangupCall is a validated HangupArgs.
type hangupCall struct {
	Channel  string
	UniqueID string
	Cause    int
	All      bool
	Force    bool
	By       string
}

// maxByBytes bounds HangupArgs.By: a public id or an operator's subject.
const maxByBytes = 128

// checkBy accepts a short printable name (it only ends up in an event).
func checkBy(by string) error {
	if len(by) > maxByBytes {
		return invalid("by", "must be at most %d bytes", maxByBytes)
	}
	if hasControl(by) {
		return invalid("by", "must not contain control characters")
	}
	return nil
}

func (l Limits) parseHangup(a protocol.HangupArgs) (hangupCall, error) {
	var c hangupCall
	var err error
	if c.Cause, err = cause(a.Cause); err != nil {
		return c, err
	}
	if err := checkBy(a.By); err != nil {
		return c, err
	}
	c.By = a.By
	switch {
	case a.All && (a.Channel != "" || a.UniqueID != ""):
		return c, invalid("all", "cannot be combined with channel or uniqueid")
	case a.All && a.Force:
		return c, invalid("force", "applies to one channel, not to all")
	case a.All:
		c.All = true
		return c, nil
	case a.Channel == "" && a.UniqueID == "":
		return c, invalid("", "one of channel, uniqueid or all is required")
	}
	if a.Channel != "" {
		if err = l.checkChannelName(a.Channel); err != nil {
			return c, err
		}
	}
	if a.UniqueID != "" {
		if err = l.checkUniqueID(a.UniqueID); err != nil {
			return c, err
		}
	}
	c.Channel, c.UniqueID, c.Force = a.Channel, a.UniqueID, a.Force
	return c, nil
}

// hangupAction ends one channel by its exact name.
func hangupAction(channel string, cause int) *ami.Message {
	return ami.NewAction("Hangup", "Channel", channel, "Cause", strconv.Itoa(cause))
}

// hangupAllRegex matches every channel name. Asterisk's Hangup treats a
// "/…/" channel as a regular expression and answers with an event list
// of what it hung up (transcript 08e).
const hangupAllRegex = "/.*/"
