package amitest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func TestOriginateOutcomes(t *testing.T) {
	srv := NewServer(t)
	srv.SetOutcome("301", Busy)
	srv.SetOutcome("302", Congestion)
	srv.SetOutcome("303", NoAnswer)
	srv.SetOutcome("304", NoSuchExtension)
	srv.SetOutcome("busy", Answer) // overrides the built-in dialplan
	srv.SetOutcome("305", Answer.AfterRinging(30*time.Millisecond))
	srv.SetOutcome("306", Answer.AfterRinging(time.Hour)) // rings past the Timeout
	tests := []struct {
		exten      string
		wantOK     bool
		wantReason string
		wantCause  string // Hangup Cause of ;2, "" when the call stays up
		wantRing   bool
	}{
		{exten: "150", wantOK: true, wantReason: "4"},
		{exten: "+375296254070", wantOK: true, wantReason: "4"},
		{exten: "301", wantReason: "5", wantCause: "17"},
		{exten: "302", wantReason: "8", wantCause: "34"},
		{exten: "303", wantReason: "3", wantCause: "19", wantRing: true},
		{exten: "noanswer", wantReason: "3", wantCause: "19", wantRing: true},
		{exten: "304", wantReason: "0", wantCause: "0"},
		{exten: "nosuchexten", wantReason: "0", wantCause: "0"},
		{exten: "busy", wantOK: true, wantReason: "4"},
		{exten: "305", wantOK: true, wantReason: "4", wantRing: true},
		{exten: "306", wantReason: "3", wantCause: "19", wantRing: true},
	}
	for _, tc := range tests {
		t.Run(tc.exten, func(t *testing.T) {
			c := login(t, srv, "")
			dial := "Local/" + tc.exten + "@inoffice"
			for _, async := range []bool{true, false} {
				kv := []string{"Channel", dial, "Application", "Wait", "Data", "600", "Timeout", "200"}
				if async {
					kv = append(kv, "Async", "true")
				}
				start := len(c.seen)
				id := c.sendAction("Originate", kv...)
				r := c.next(func(m *ami.Message) bool { return m.IsResponse() && m.ActionID() == id })
				switch {
				case async && r.Get("Message") != "Originate successfully queued",
					!async && tc.wantOK && r.Get("Message") != "Originate successfully queued",
					!async && !tc.wantOK && r.Get("Message") != "Originate failed":
					t.Fatalf("async=%v response %q", async, r.String())
				}
				if async {
					or := c.find(start, event("OriginateResponse", "ActionID", id))
					if got := or.Get("Reason"); got != tc.wantReason {
						t.Fatalf("Reason %s, want %s", got, tc.wantReason)
					}
					if tc.wantOK != (or.Get("Response") == "Success") {
						t.Fatalf("OriginateResponse %q", or.String())
					}
					if !tc.wantOK && (or.Get("Channel") != dial || or.Get("Uniqueid") != "<unknown>") {
						t.Fatalf("failure must name the requested channel and <unknown>: %q", or.String())
					}
				}
				if tc.wantCause != "" {
					h := c.find(start, func(m *ami.Message) bool {
						return m.Event() == "Hangup" && strings.HasSuffix(m.Get("Channel"), ";2") && strings.HasPrefix(m.Get("Channel"), dial)
					})
					if h.Get("Cause") != tc.wantCause {
						t.Fatalf("Hangup cause %s, want %s", h.Get("Cause"), tc.wantCause)
					}
				}
				c.barrier()
				all := c.seen[start:]
				rang := slices.ContainsFunc(all, event("DialState", "DialStatus", "RINGING"))
				if rang != tc.wantRing {
					t.Fatalf("rang=%v, want %v: %v", rang, tc.wantRing, names(all))
				}
				ours := func(m *ami.Message) bool {
					return m.Event() == "Newchannel" && strings.HasPrefix(m.Get("Channel"), dial+"-")
				}
				if first := slices.IndexFunc(all, ours); first >= 0 &&
					first < slices.IndexFunc(all, func(m *ami.Message) bool { return m.ActionID() == id && m.IsResponse() }) {
					t.Fatalf("an event of the call came before the Response: %v", names(all))
				}
			}
		})
	}
}

func TestOriginateErrors(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "off")
	tests := []struct {
		kv   []string
		want string
	}{
		{[]string{"Application", "Wait"}, "Channel not specified"},
		{[]string{"Channel", "Local/150@inoffice"}, "Originate with 'Exten' requires 'Context' and 'Priority'"},
		{[]string{"Channel", "Local/150@inoffice", "Exten", "151", "Priority", "1"}, "Extension does not exist."},
		{[]string{"Channel", "Local/150@inoffice", "Exten", "nosuch", "Context", "inoffice", "Priority", "1"}, "Extension does not exist."},
		{[]string{"Channel", "garbage", "Application", "Wait"}, "Invalid channel"},
		{[]string{"Channel", "Local/150@inoffice", "Application", "Wait", "Timeout", "soon"}, "Invalid timeout"},
		{[]string{"Channel", "Foo/bar", "Application", "Wait"}, "Originate failed"}, // sync, no such technology
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			r := c.action("Originate", tc.kv...)
			if r.Response() != "Error" || r.Get("Message") != tc.want {
				t.Fatalf("got %q, want Error %q", r.String(), tc.want)
			}
		})
	}
	if n := len(srv.Channels()); n != 0 {
		t.Fatalf("%d channels left after refused originates", n)
	}
}

// ChannelId/OtherChannelId name the ;1 and ;2 halves, so the API knows a
// call's id before it rings; the linkedid is the ;1's.
func TestOriginateChannelIDs(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "")
	id := c.sendAction("Originate", "Channel", "Local/150@inoffice", "Application", "Dial",
		"Data", "Local/+375296254070@inoffice", "ChannelId", "call-1", "OtherChannelId", "call-1-2",
		"CallerID", `"Desk 150" <150>`, "Variable", "A=1,B=2", "Variable", "C=3", "Async", "yes")
	or := c.next(event("OriginateResponse", "ActionID", id))
	if or.Get("Uniqueid") != "call-1" || or.Get("CallerIDName") != "Desk 150" {
		t.Fatalf("OriginateResponse %q", or.String())
	}
	c.next(event("BridgeEnter", "Uniqueid", "call-1"))
	chans := srv.Channels()
	if len(chans) != 4 {
		t.Fatalf("%d channels, want 4", len(chans))
	}
	if chans[0].Uniqueid != "call-1" || chans[1].Uniqueid != "call-1-2" {
		t.Fatalf("uniqueids %s %s", chans[0].Uniqueid, chans[1].Uniqueid)
	}
	for _, ch := range chans {
		if ch.Linkedid != "call-1" {
			t.Fatalf("%s linkedid %s", ch.Name, ch.Linkedid)
		}
	}
	if v := chans[0].Variables; v["A"] != "1" || v["B"] != "2" || v["C"] != "3" {
		t.Fatalf("variables %v", v)
	}
	// A uniqueid in use cannot be given again.
	id = c.sendAction("Originate", "Channel", "Local/151@inoffice", "Application", "Wait", "ChannelId", "call-1", "Async", "true")
	if or := c.next(event("OriginateResponse", "ActionID", id)); or.Get("Response") != "Failure" {
		t.Fatalf("reused ChannelId: %q", or.String())
	}
}

func TestStartCallAndHangup(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "")
	linkedid, err := srv.StartCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	enter := c.next(event("BridgeEnter", "Uniqueid", linkedid))
	chans := srv.Channels()
	if len(chans) != 4 || chans[0].Uniqueid != linkedid || chans[0].BridgeID != enter.Get("BridgeUniqueid") {
		t.Fatalf("channels %+v", chans)
	}
	for _, ch := range chans {
		if ch.State != "Up" {
			t.Fatalf("%s is %s", ch.Name, ch.State)
		}
	}
	if err := srv.Hangup("nosuch", 16); !errors.Is(err, ErrNoSuchChannel) {
		t.Fatalf("Hangup of unknown channel: %v", err)
	}
	// The remote party (the dialled number's ;2) hangs up busy.
	if err := srv.Hangup(chans[3].Name, 17); err != nil {
		t.Fatal(err)
	}
	got := c.barrier()
	var hung []string
	for _, m := range got {
		if m.Event() == "Hangup" {
			hung = append(hung, m.Get("Channel")+"="+m.Get("Cause"))
		}
	}
	if len(hung) != 4 || len(srv.Channels()) != 0 {
		t.Fatalf("hangups %v, channels left %d", hung, len(srv.Channels()))
	}
	if !slices.Contains(hung, chans[3].Name+"=17") {
		t.Fatalf("the hung-up channel lacks its cause: %v", hung)
	}
	if !slices.ContainsFunc(got, event("Cdr", "Channel", chans[0].Name, "DestinationChannel", chans[2].Name, "Disposition", "ANSWERED")) {
		t.Fatalf("no Cdr for the caller with its DestinationChannel: %v", names(got))
	}
	if _, err := srv.StartCall("", "1"); err == nil {
		t.Fatal("StartCall accepted an empty extension")
	}
}

func TestHangupAction(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "")
	call := func() []ChannelInfo {
		t.Helper()
		id, err := srv.StartCall("150", "+375296254070")
		if err != nil {
			t.Fatal(err)
		}
		c.next(event("BridgeEnter", "Uniqueid", id))
		var out []ChannelInfo
		for _, ch := range srv.Channels() {
			if ch.Linkedid == id {
				out = append(out, ch)
			}
		}
		return out
	}
	t.Run("by name", func(t *testing.T) {
		chans := call()
		if r := c.action("Hangup", "Channel", chans[0].Name, "Cause", "16"); r.Get("Message") != "Channel Hungup" {
			t.Fatalf("%q", r.String())
		}
		got := c.barrier()
		if slices.ContainsFunc(got, event("HangupRequest", "Channel", chans[0].Name)) {
			t.Fatal("the targeted channel got a HangupRequest of its own")
		}
		if !slices.ContainsFunc(got, event("HangupRequest", "Channel", chans[1].Name, "Cause", "16")) {
			t.Fatalf("its ;2 partner got no HangupRequest: %v", names(got))
		}
		if !slices.ContainsFunc(got, event("Hangup", "Channel", chans[0].Name, "Cause", "16", "Cause-txt", "Normal Clearing")) {
			t.Fatalf("no Hangup with cause 16: %v", names(got))
		}
	})
	t.Run("by uniqueid with a text cause", func(t *testing.T) {
		chans := call()
		c.action("Hangup", "Channel", chans[0].Uniqueid, "Cause", "NORMAL_CLEARING")
		c.next(event("Hangup", "Channel", chans[0].Name, "Cause", "16"))
	})
	for _, tc := range []struct{ name, channel, want string }{
		{"unknown", "Local/999@inoffice-deadbeef;1", "No such channel"},
		{"missing", "", "No channel specified"},
		{"bad regex", `/^Local\/(150.*/`, `Regex compile failed on: /^Local\/(150.*/`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kv []string
			if tc.channel != "" {
				kv = []string{"Channel", tc.channel}
			}
			if r := c.action("Hangup", kv...); r.Response() != "Error" || r.Get("Message") != tc.want {
				t.Fatalf("%q", r.String())
			}
		})
	}
	t.Run("regex", func(t *testing.T) {
		a, b := call(), call()
		id := c.sendAction("Hangup", "Channel", `/^Local\/150@/`)
		r := c.next(func(m *ami.Message) bool { return m.ActionID() == id })
		if r.Get("Message") != "Channels hung up will follow" || r.Get("EventList") != "start" {
			t.Fatalf("%q", r.String())
		}
		done := c.next(event("ChannelsHungupListComplete", "ActionID", id))
		if done.Get("ListItems") != "4" {
			t.Fatalf("ListItems %s, want 4", done.Get("ListItems"))
		}
		var items []string
		for _, m := range c.seen {
			if m.Event() == "ChannelHungup" && m.ActionID() == id {
				items = append(items, m.Get("Channel"))
			}
		}
		want := []string{a[0].Name, a[1].Name, b[0].Name, b[1].Name}
		if !slices.Equal(items, want) {
			t.Fatalf("ChannelHungup %v, want %v", items, want)
		}
		c.barrier()
		if n := len(srv.Channels()); n != 0 {
			t.Fatalf("%d channels left", n)
		}
		id = c.sendAction("Hangup", "Channel", `/^nothing/`)
		if done := c.next(event("ChannelsHungupListComplete", "ActionID", id)); done.Get("ListItems") != "0" {
			t.Fatalf("%q", done.String())
		}
	})
}

func TestChanSpy(t *testing.T) {
	srv := NewServer(t, WithChanSpyDelay(20*time.Millisecond))
	c := login(t, srv, "")
	target, err := srv.StartCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	c.next(event("BridgeEnter", "Uniqueid", target))
	spyID := c.sendAction("Originate", "Channel", "Local/151@inoffice", "Application", "ChanSpy",
		"Data", "Local/150@inoffice,bq", "CallerID", "Spy 151 <151>", "Async", "true")
	waitID := c.sendAction("Originate", "Channel", "Local/156@inoffice", "Application", "ChanSpy",
		"Data", "Local/777@inoffice,bq", "Async", "true")
	or := c.find(0, event("OriginateResponse", "ActionID", spyID))
	spyer := or.Get("Channel")
	start := c.next(event("ChanSpyStart", "SpyerChannel", spyer))
	if start.Get("SpyeeUniqueid") != target || start.Get("SpyerCallerIDName") != "Spy 151" {
		t.Fatalf("ChanSpyStart %q", start.String())
	}
	waiter := c.find(0, event("OriginateResponse", "ActionID", waitID)).Get("Channel")

	// The target hangs up: ChanSpyStop, and the spy stays up.
	if err := srv.Hangup(target, 16); err != nil {
		t.Fatal(err)
	}
	c.next(event("ChanSpyStop", "SpyerChannel", spyer, "SpyeeUniqueid", target))
	// A new call matching the prefix: the spy attaches again.
	next, err := srv.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	again := c.next(event("ChanSpyStart", "SpyerChannel", spyer))
	if again.Get("SpyeeUniqueid") != next {
		t.Fatalf("re-attached to %s, want %s", again.Get("SpyeeUniqueid"), next)
	}
	// The spy on Local/777 waited silently until a matching channel came.
	for _, m := range c.seen {
		if m.Event() == "ChanSpyStart" && m.Get("SpyerChannel") == waiter {
			t.Fatalf("spy without a target started: %q", m.String())
		}
	}
	late, err := srv.StartCall("777", "150")
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(event("ChanSpyStart", "SpyerChannel", waiter)); m.Get("SpyeeUniqueid") != late {
		t.Fatalf("%q", m.String())
	}
	// Hanging up the spy stops it.
	if err := srv.Hangup(spyer, 0); err != nil {
		t.Fatal(err)
	}
	c.next(event("ChanSpyStop", "SpyerChannel", spyer))
}

func TestStatusGetvarSetvar(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "")
	id, err := srv.StartCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	c.next(event("BridgeEnter", "Uniqueid", id))
	chans := srv.Channels()
	caller := chans[0].Name

	sid := c.sendAction("Status", "Channel", caller, "Variables", "BRIDGEPEER,DIALSTATUS")
	item := c.next(event("Status", "ActionID", sid))
	hs := item.Headers
	if hs[1] != (ami.Header{Key: "Privilege", Value: "Call"}) || hs[len(hs)-1].Key != "ActionID" {
		t.Fatalf("Status item shape: %q", item.String())
	}
	if vars := item.Values("Variable"); !slices.Equal(vars, []string{"BRIDGEPEER=" + chans[2].Name, "DIALSTATUS=ANSWER"}) {
		t.Fatalf("Variables %v", vars)
	}
	if done := c.next(event("StatusComplete", "ActionID", sid)); done.Get("Items") != "1" {
		t.Fatalf("%q", done.String())
	}
	sid = c.sendAction("Status")
	if done := c.next(event("StatusComplete", "ActionID", sid)); done.Get("ListItems") != "4" {
		t.Fatalf("%q", done.String())
	}
	if r := c.action("Status", "Channel", "nope"); r.Get("Message") != "No such channel" {
		t.Fatalf("%q", r.String())
	}

	for _, tc := range []struct{ variable, want string }{
		{"CHANNEL(state)", "Up"}, {"DIALSTATUS", "ANSWER"}, {"BRIDGEPEER", chans[2].Name},
		{"CALLERID(num)", ""}, {"NO_SUCH_VARIABLE", ""},
	} {
		if r := c.action("Getvar", "Channel", caller, "Variable", tc.variable); r.Get("Value") != tc.want {
			t.Errorf("Getvar %s = %q, want %q", tc.variable, r.Get("Value"), tc.want)
		}
	}
	if r := c.action("Getvar", "Channel", caller); r.Get("Message") != "No variable specified" {
		t.Fatalf("%q", r.String())
	}
	if r := c.action("Getvar", "Channel", "nope", "Variable", "X"); r.Get("Message") != "No such channel" {
		t.Fatalf("%q", r.String())
	}
	if r := c.action("Setvar", "Channel", caller, "Variable", "TAG", "Value", "hello world"); r.Get("Message") != "Variable Set" {
		t.Fatalf("%q", r.String())
	}
	c.next(event("VarSet", "Channel", caller, "Variable", "TAG", "Value", "hello world"))
	// A bare CR stays in the value, both ways (transcript 09p/9q).
	raw := fmt.Sprintf("Action: Setvar\r\nChannel: %s\r\nVariable: CR\r\nValue: a\rb\r\n\r\n", caller)
	if _, err := c.conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if r := c.action("Getvar", "Channel", caller, "Variable", "CR"); r.Get("Value") != "a\rb" {
		t.Fatalf("Getvar CR = %q", r.Get("Value"))
	}
}

func TestListsAndCommand(t *testing.T) {
	srv := NewServer(t)
	c := login(t, srv, "off")
	if _, err := srv.StartCall("150", "+375296254070"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "call bridged", func() bool {
		ch := srv.Channels()
		return len(ch) == 4 && ch[0].BridgeID != ""
	})
	id := c.sendAction("CoreShowChannels")
	done := c.next(event("CoreShowChannelsComplete", "ActionID", id))
	if done.Get("ListItems") != "4" {
		t.Fatalf("%q", done.String())
	}
	var items []*ami.Message
	for _, m := range c.seen {
		if m.Event() == "CoreShowChannel" {
			items = append(items, m)
		}
	}
	if len(items) != 4 || items[0].Headers[1].Key != "ActionID" || items[0].Get("Privilege") != "" {
		t.Fatalf("CoreShowChannel items %v", items)
	}
	bid := items[0].Get("BridgeId")
	id = c.sendAction("BridgeInfo", "BridgeUniqueid", bid)
	if done := c.next(event("BridgeInfoComplete", "ActionID", id)); done.Get("ListItems") != "2" {
		t.Fatalf("%q", done.String())
	}
	id = c.sendAction("BridgeList")
	if done := c.next(event("BridgeListComplete", "ActionID", id)); done.Get("ListItems") != "1" {
		t.Fatalf("%q", done.String())
	}
	out := c.action("Command", "Command", "core show channels").Values("Output")
	if len(out) != 8 || out[5] != "4 active channels" || out[6] != "2 active calls" || out[7] != "2 calls processed" {
		t.Fatalf("core show channels:\n%s", strings.Join(out, "\n"))
	}
	if !strings.HasPrefix(out[1], fmt.Sprintf("%-64s %-32s", srv.Channels()[0].Name, "150@inoffice:1")) {
		t.Fatalf("row %q", out[1])
	}
	r := c.action("Command", "Command", "no such cli command")
	if r.Response() != "Error" || !strings.HasPrefix(r.Get("Output"), "No such command 'no such cli command'") {
		t.Fatalf("%q", r.String())
	}
	if got := c.action("CoreStatus").Get("CoreCurrentCalls"); got != "2" {
		t.Fatalf("CoreCurrentCalls %s", got)
	}
}

// The caller hangs up while its Dial still rings: DialEnd CANCEL, and
// every channel of the call goes.
func TestHangupWhileDialling(t *testing.T) {
	srv := NewServer(t)
	srv.SetOutcome("151", NoAnswer)
	c := login(t, srv, "")
	id, err := srv.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	c.next(event("DialState", "Uniqueid", id, "DialStatus", "RINGING"))
	if err := srv.Hangup(id, 0); err != nil {
		t.Fatal(err)
	}
	c.next(event("DialEnd", "Uniqueid", id, "DialStatus", "CANCEL"))
	c.barrier()
	if n := len(srv.Channels()); n != 0 {
		t.Fatalf("%d channels left", n)
	}
}
