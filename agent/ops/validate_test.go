package ops

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func defaultLimits() Limits {
	var l Limits
	l.fill()
	return l
}

func TestParseOriginate(t *testing.T) {
	l := defaultLimits()
	ok := protocol.OriginateArgs{From: "150", To: "+375296254070"}
	with := func(f func(*protocol.OriginateArgs)) protocol.OriginateArgs {
		a := ok
		f(&a)
		return a
	}
	cases := []struct {
		name      string
		args      protocol.OriginateArgs
		field     string // "" = accepted
		callerID  string
		timeoutMS int64
	}{
		{name: "minimal", args: ok, timeoutMS: 30000},
		{name: "star and hash", args: with(func(a *protocol.OriginateArgs) { a.To = "*72#" }), timeoutMS: 30000},
		{name: "number caller id", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "150" }), callerID: "<150>", timeoutMS: 30000},
		{name: "name <num>", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "Desk 150 <150>" }), callerID: `"Desk 150" <150>`, timeoutMS: 30000},
		{name: "quoted name", args: with(func(a *protocol.OriginateArgs) { a.CallerID = `"Desk 150" <+150>` }), callerID: `"Desk 150" <+150>`, timeoutMS: 30000},
		{name: "name only", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "Reception" }), callerID: `"Reception"`, timeoutMS: 30000},
		{name: "utf8 name", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "Приёмная <100>" }), callerID: `"Приёмная" <100>`, timeoutMS: 30000},
		{name: "timeout", args: with(func(a *protocol.OriginateArgs) { a.TimeoutS = 300 }), timeoutMS: 300000},
		{name: "min timeout", args: with(func(a *protocol.OriginateArgs) { a.TimeoutS = 1 }), timeoutMS: 1000},
		{name: "given call id", args: with(func(a *protocol.OriginateArgs) { a.CallID = "crm-42.7_x" }), timeoutMS: 30000},

		{name: "empty from", args: with(func(a *protocol.OriginateArgs) { a.From = "" }), field: "from"},
		{name: "letters", args: with(func(a *protocol.OriginateArgs) { a.From = "150a" }), field: "from"},
		{name: "at sign", args: with(func(a *protocol.OriginateArgs) { a.To = "150@other" }), field: "to"},
		{name: "dial options", args: with(func(a *protocol.OriginateArgs) { a.To = "150,30,tT" }), field: "to"},
		{name: "second dial target", args: with(func(a *protocol.OriginateArgs) { a.To = "150&PJSIP/200" }), field: "to"},
		{name: "plus inside", args: with(func(a *protocol.OriginateArgs) { a.To = "1+2" }), field: "to"},
		{name: "crlf", args: with(func(a *protocol.OriginateArgs) { a.To = "150\r\nAction: Hangup" }), field: "to"},
		{name: "too long", args: with(func(a *protocol.OriginateArgs) { a.To = strings.Repeat("1", 33) }), field: "to"},
		{name: "caller id quote", args: with(func(a *protocol.OriginateArgs) { a.CallerID = `Bad" <150>` }), field: "caller_id"},
		{name: "caller id bracket in name", args: with(func(a *protocol.OriginateArgs) { a.CallerID = `a>b` }), field: "caller_id"},
		{name: "caller id newline", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "x\n<150>" }), field: "caller_id"},
		{name: "caller id bad number", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "x <15a>" }), field: "caller_id number"},
		{name: "caller id unterminated", args: with(func(a *protocol.OriginateArgs) { a.CallerID = "x <150" }), field: "caller_id"},
		{name: "caller id long name", args: with(func(a *protocol.OriginateArgs) { a.CallerID = strings.Repeat("n", 65) + " <1>" }), field: "caller_id"},
		{name: "timeout zero after negative", args: with(func(a *protocol.OriginateArgs) { a.TimeoutS = -1 }), field: "timeout_s"},
		{name: "timeout too long", args: with(func(a *protocol.OriginateArgs) { a.TimeoutS = 301 }), field: "timeout_s"},
		{name: "call id with slash", args: with(func(a *protocol.OriginateArgs) { a.CallID = "a/b" }), field: "call_id"},
		{name: "call id too long", args: with(func(a *protocol.OriginateArgs) { a.CallID = strings.Repeat("a", 65) }), field: "call_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.parseOriginate(tc.args)
			if tc.field != "" {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Field != tc.field {
					t.Fatalf("err = %v, want InvalidError on %q", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.CallerID != tc.callerID || c.Timeout.Milliseconds() != tc.timeoutMS {
				t.Errorf("caller id %q timeout %v; want %q %dms", c.CallerID, c.Timeout, tc.callerID, tc.timeoutMS)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	l := defaultLimits()
	many := map[string]string{}
	for i := range 33 {
		many["V"+strings.Repeat("x", i)] = "1"
	}
	cases := []struct {
		name string
		vars map[string]string
		ok   bool
	}{
		{"plain", map[string]string{"CRM_ID": "42", "__INHERIT": "a=b c"}, true},
		{"max value", map[string]string{"A": strings.Repeat("v", 256)}, true},
		{"name max", map[string]string{strings.Repeat("A", 64): "1"}, true},
		{"empty value", map[string]string{"A": ""}, true},
		{"function name", map[string]string{"FILE(/etc/passwd)": "x"}, false},
		{"name digit first", map[string]string{"1A": "x"}, false},
		{"name too long", map[string]string{strings.Repeat("A", 65): "1"}, false},
		{"comma splits", map[string]string{"A": "1,CHANNEL(hangup_handler_push)=x"}, false},
		{"quote", map[string]string{"A": `a"b`}, false},
		{"backslash", map[string]string{"A": `a\b`}, false},
		{"crlf", map[string]string{"A": "1\r\nAction: Hangup"}, false},
		{"nul", map[string]string{"A": "1\x00"}, false},
		{"value too long", map[string]string{"A": strings.Repeat("v", 257)}, false},
		{"invalid utf8", map[string]string{"A": "\xff"}, false},
		{"too many", many, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.variables(tc.vars)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestParseHangup(t *testing.T) {
	l := defaultLimits()
	cases := []struct {
		name  string
		args  protocol.HangupArgs
		field string
		cause int
	}{
		{name: "channel", args: protocol.HangupArgs{Channel: "PJSIP/150-00000001"}, cause: 16},
		{name: "uniqueid with cause", args: protocol.HangupArgs{UniqueID: "1795337025.18", Cause: 17}, cause: 17},
		{name: "all", args: protocol.HangupArgs{All: true, Cause: 127}, cause: 127},
		{name: "nothing", args: protocol.HangupArgs{}, field: ""},
		{name: "regex", args: protocol.HangupArgs{Channel: "/.*/"}, field: "channel"},
		{name: "crlf", args: protocol.HangupArgs{Channel: "PJSIP/1\r\n\r\nAction: Hangup"}, field: "channel"},
		{name: "blank", args: protocol.HangupArgs{Channel: "PJSIP/1 x"}, field: "channel"},
		{name: "long", args: protocol.HangupArgs{Channel: "PJSIP/" + strings.Repeat("1", 200)}, field: "channel"},
		{name: "cause too big", args: protocol.HangupArgs{Channel: "PJSIP/1-1", Cause: 128}, field: "cause"},
		{name: "cause negative", args: protocol.HangupArgs{Channel: "PJSIP/1-1", Cause: -1}, field: "cause"},
		{name: "all with channel", args: protocol.HangupArgs{All: true, Channel: "PJSIP/1-1"}, field: "all"},
		{name: "all with force", args: protocol.HangupArgs{All: true, Force: true}, field: "force"},
		{name: "uniqueid control", args: protocol.HangupArgs{UniqueID: "1\n"}, field: "uniqueid"},
		{name: "by", args: protocol.HangupArgs{Channel: "PJSIP/1-1", By: "Zoë <ops@example.com>"}, cause: 16},
		{name: "by control", args: protocol.HangupArgs{Channel: "PJSIP/1-1", By: "ops\r\nAction: Hangup"}, field: "by"},
		{name: "by DEL", args: protocol.HangupArgs{Channel: "PJSIP/1-1", By: "ops\x7f"}, field: "by"},
		{name: "by long", args: protocol.HangupArgs{Channel: "PJSIP/1-1", By: strings.Repeat("a", 129)}, field: "by"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := l.parseHangup(tc.args)
			if tc.cause == 0 {
				var inv *InvalidError
				if !errors.As(err, &inv) || inv.Field != tc.field {
					t.Fatalf("err = %v, want InvalidError on %q", err, tc.field)
				}
				return
			}
			if err != nil || c.Cause != tc.cause {
				t.Fatalf("cause %d err %v; want %d", c.Cause, err, tc.cause)
			}
		})
	}
}

func TestParseMonitor(t *testing.T) {
	l := defaultLimits()
	cases := []struct {
		args protocol.MonitorArgs
		opts string
	}{
		{protocol.MonitorArgs{Mode: "spy", Target: "150", From: "151"}, "bq"},
		{protocol.MonitorArgs{Mode: "whisper", Target: "150", From: "151"}, "bqw"},
		{protocol.MonitorArgs{Mode: "barge", Target: "150", From: "151"}, "Bbqw"},
		{protocol.MonitorArgs{Mode: "listen", Target: "150", From: "151"}, ""},
		{protocol.MonitorArgs{Mode: "spy", Target: "150", From: "150"}, ""},
		{protocol.MonitorArgs{Mode: "spy", Target: "PJSIP/150", From: "151"}, ""},
		{protocol.MonitorArgs{Mode: "spy", Target: "150", From: "151", TimeoutS: 1000}, ""},
	}
	for _, tc := range cases {
		c, err := l.parseMonitor(tc.args)
		if (err == nil) != (tc.opts != "") || c.Options != tc.opts {
			t.Errorf("parseMonitor(%+v) = %q, %v; want %q", tc.args, c.Options, err, tc.opts)
		}
	}
}

func TestOriginateAction(t *testing.T) {
	l := defaultLimits()
	c, err := l.parseOriginate(protocol.OriginateArgs{
		From: "150", To: "+375296254070", CallerID: "Desk 150 <150>",
		Variables: map[string]string{"Z": "last", "CRM_ID": "42"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := c.action("inoffice", "sb-1-ab").String()
	want := "Action: Originate\r\n" +
		"Channel: Local/150@inoffice\r\n" +
		"Application: Dial\r\n" +
		"Data: Local/+375296254070@inoffice\r\n" +
		"CallerID: \"Desk 150\" <150>\r\n" +
		"Timeout: 30000\r\n" +
		"Async: true\r\n" +
		"ChannelId: sb-1-ab\r\n" +
		"OtherChannelId: sb-1-ab-2\r\n" +
		"Variable: CRM_ID=42\r\n" +
		"Variable: Z=last\r\n\r\n"
	if got != want {
		t.Errorf("action:\n%s\nwant:\n%s", got, want)
	}
	if _, err := ami.AppendWire(nil, c.action("inoffice", "sb-1-ab")); err != nil {
		t.Errorf("codec refuses the action: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	if err := (Limits{}).Validate(); err != nil {
		t.Errorf("zero limits: %v", err)
	}
	bad := []Limits{
		{MaxNumberLen: 100},
		{MaxVariableValueBytes: 2000},
		{MinTimeout: 10 * time.Second, MaxTimeout: 5 * time.Second},
		{DefaultTimeout: 400 * time.Second},
	}
	for _, l := range bad {
		if err := l.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", l)
		}
	}
}

func TestNewCallID(t *testing.T) {
	seen := map[string]bool{}
	l := defaultLimits()
	for range 1000 {
		id := NewCallID()
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if err := l.checkCallID("call_id", id); err != nil {
			t.Fatalf("generated id %q fails our own validation: %v", id, err)
		}
		if err := l.checkCallID("call_id", otherChannelID(id)); err != nil {
			t.Fatalf("other id of %q fails validation: %v", id, err)
		}
	}
}

func FuzzCallerID(f *testing.F) {
	for _, s := range []string{"150", "Desk <150>", `"a" <+1>`, "x <", "<>", "\"\" <1>", "a\"b"} {
		f.Add(s)
	}
	l := defaultLimits()
	f.Fuzz(func(t *testing.T, s string) {
		out, err := l.callerID("caller_id", s)
		if err != nil || out == "" {
			return
		}
		// Whatever we accept renders to one safe header value that
		// parses back to the same thing.
		if strings.ContainsAny(out, "\r\n\x00") {
			t.Fatalf("callerID(%q) = %q has a line break", s, out)
		}
		again, err := l.callerID("caller_id", out)
		if err != nil || again != out {
			t.Fatalf("callerID(%q) = %q does not round-trip: %q, %v", s, out, again, err)
		}
	})
}

func FuzzParseOriginate(f *testing.F) {
	f.Add("150", "+375296254070", "Desk <150>", "CRM", "42")
	f.Add("1\r\n", "x,y", "", "A(B)", "1,2")
	l := defaultLimits()
	f.Fuzz(func(t *testing.T, from, to, cid, vname, vval string) {
		c, err := l.parseOriginate(protocol.OriginateArgs{From: from, To: to, CallerID: cid, Variables: map[string]string{vname: vval}})
		if err != nil {
			return
		}
		m := c.action("inoffice", "sb-1-00")
		if _, err := ami.AppendWire(nil, m); err != nil {
			t.Fatalf("accepted args build an action the codec refuses: %v\n%s", err, m)
		}
		for _, v := range m.Values("Variable") {
			if strings.Count(v, ",") > 0 {
				t.Fatalf("variable header %q has a comma", v)
			}
		}
		if strings.ContainsAny(m.Get("Data"), ",&@/") && m.Get("Data") != "Local/"+to+"@inoffice" {
			t.Fatalf("Data %q", m.Get("Data"))
		}
	})
}
