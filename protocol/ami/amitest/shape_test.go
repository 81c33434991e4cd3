package amitest

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// shape is the ordered list of header names of an event, with runs of a
// repeated header (Variable, Output) collapsed to one.
func shape(m *ami.Message) string {
	var keys []string
	for _, h := range m.Headers {
		if n := len(keys); n > 0 && keys[n-1] == h.Key {
			continue
		}
		keys = append(keys, h.Key)
	}
	return strings.Join(keys, ",")
}

// capturedShapes maps every event name in the captures to the header
// shapes Asterisk used for it.
func capturedShapes(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.recv.raw"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	out := map[string][]string{}
	for _, f := range files {
		tr := loadTranscript(t, strings.TrimSuffix(filepath.Base(f), ".recv.raw"))
		for _, st := range tr.steps {
			for _, raw := range st.recv {
				m := parseOne(t, raw)
				if name := m.Event(); name != "" && !slices.Contains(out[name], shape(m)) {
					out[name] = append(out[name], shape(m))
				}
			}
		}
	}
	return out
}

func parseOne(t *testing.T, raw []byte) *ami.Message {
	t.Helper()
	m, err := ami.NewReader(strings.NewReader(string(raw))).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEventShapesMatchCaptures drives the fake through what captures 03–09
// show (calls, failures, ChanSpy, lists, Status, Setvar, hangups) and
// checks that every event it writes has exactly the header names, in the
// order, that Asterisk used for that event somewhere in the captures.
func TestEventShapesMatchCaptures(t *testing.T) {
	want := capturedShapes(t)
	srv := NewServer(t, WithRingDelay(5*time.Millisecond), WithChanSpyDelay(time.Millisecond))
	c := login(t, srv, "")
	id, err := srv.StartCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	c.next(event("BridgeEnter", "Uniqueid", id))
	caller := srv.Channels()[0].Name
	spy := c.sendAction("Originate", "Channel", "Local/151@inoffice", "Application", "ChanSpy",
		"Data", "Local/150@inoffice,bq", "CallerID", "Spy 151 <151>", "Async", "true")
	c.next(event("ChanSpyStart"))
	for _, ext := range []string{"busy", "congestion", "noanswer", "nosuchexten"} {
		c.sendAction("Originate", "Channel", "Local/"+ext+"@inoffice", "Application", "Wait", "Data", "600", "Timeout", "50", "Async", "true")
	}
	c.sendAction("Originate", "Channel", "Foo/bar", "Application", "Wait", "Async", "true")
	c.action("CoreShowChannels")
	c.action("Status", "Variables", "DIALSTATUS,BRIDGEPEER")
	c.action("BridgeList")
	bid := srv.Channels()[0].BridgeID
	c.action("BridgeInfo", "BridgeUniqueid", bid)
	c.action("Setvar", "Channel", caller, "Variable", "X", "Value", "y")
	c.action("Frobnicate")
	for countEvents(c.seen, event("OriginateResponse", "Response", "Failure")) < 5 {
		c.next(func(*ami.Message) bool { return true })
	}
	c.action("Hangup", "Channel", caller)
	c.next(event("ChanSpyStop"))
	c.action("Hangup", "Channel", `/^Local\/151@/`)
	c.find(0, event("OriginateResponse", "ActionID", spy))
	c.barrier()

	checked := map[string]bool{}
	for _, m := range c.seen {
		name := m.Event()
		if name == "" {
			continue
		}
		shapes, ok := want[name]
		if name == "DialState" {
			// Asterisk builds DialState and DialEnd from the same dial
			// message (caller block, if any, then Dest block, DialStatus);
			// the captures only show a DialState without a caller.
			shapes = append(slices.Clone(shapes), want["DialEnd"]...)
		}
		if !ok {
			t.Errorf("event %s never appears in the captures: %q", name, m.String())
			continue
		}
		if !slices.Contains(shapes, shape(m)) {
			t.Errorf("event %s has headers\n  %s\nthe captures show\n  %s", name, shape(m), strings.Join(shapes, "\n  "))
		}
		checked[name] = true
	}
	for _, name := range []string{"Newchannel", "Newstate", "LocalBridge", "DialBegin", "DialState", "DialEnd",
		"BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy", "OriginateResponse", "HangupRequest",
		"SoftHangupRequest", "Hangup", "Cdr", "ChanSpyStart", "ChanSpyStop", "CoreShowChannel",
		"CoreShowChannelsComplete", "Status", "StatusComplete", "BridgeListItem", "BridgeListComplete",
		"BridgeInfoChannel", "BridgeInfoComplete", "VarSet", "RequestBadFormat", "ChannelHungup",
		"ChannelsHungupListComplete", "FullyBooted", "SuccessfulAuth"} {
		if !checked[name] {
			t.Errorf("the scenario produced no %s event to check", name)
		}
	}
}

func countEvents(msgs []*ami.Message, pred func(*ami.Message) bool) int {
	n := 0
	for _, m := range msgs {
		if pred(m) {
			n++
		}
	}
	return n
}
