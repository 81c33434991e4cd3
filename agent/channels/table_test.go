package channels

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

const transcripts = "../../protocol/ami/testdata/transcripts"

// readTranscript parses every message Asterisk sent in a capture.
func readTranscript(t testing.TB, name string) []*ami.Message {
	t.Helper()
	f, err := os.Open(filepath.Join(transcripts, name+".recv.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ami.NewReader(f)
	if _, err := r.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	var out []*ami.Message
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, m)
	}
}

// events returns the messages of a capture that are events, excluding the
// items of an event list answering actionID (and its Complete event).
func events(msgs []*ami.Message) []*ami.Message {
	var out []*ami.Message
	for _, m := range msgs {
		if m.IsEvent() && m.ActionID() == "" {
			out = append(out, m)
		}
	}
	return out
}

// listItems returns the items of the event list answering actionID.
func listItems(msgs []*ami.Message, actionID, item string) []*ami.Message {
	var out []*ami.Message
	for _, m := range msgs {
		if m.ActionID() == actionID && m.Event() == item {
			out = append(out, m)
		}
	}
	return out
}

// fakeClock advances one millisecond per reading, so every channel gets a
// distinct StartedAt in event order.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 22, 8, 43, 0, 0, time.UTC)}
}

func names(chs []protocol.Channel) []string {
	out := make([]string, len(chs))
	for i, ch := range chs {
		out[i] = ch.Channel
	}
	return out
}

func TestOriginateCaptureBuildsTable(t *testing.T) {
	tab := New(Config{Now: newClock().Now})
	for _, m := range events(readTranscript(t, "03-originate-dial-bridge")) {
		tab.Apply(m)
	}
	// The CLI's "core show channels" at the end of the capture.
	// The CLI shows Dial(…) for the originated ;1 leg, but Asterisk
	// raises no Newexten when Originate starts an Application, so from
	// events alone that leg keeps the AppDial2 of its creation; the next
	// CoreShowChannels resync fills in Dial.
	want := map[string]struct{ app, data, bridged string }{
		"Local/150@inoffice-00000000;1":           {"AppDial2", "(Outgoing Line)", "fc673982-a7e6-4cf3-8ee3-439676bed844"},
		"Local/150@inoffice-00000000;2":           {"Wait", "600", ""},
		"Local/+375296254070@inoffice-00000001;1": {"AppDial", "(Outgoing Line)", "fc673982-a7e6-4cf3-8ee3-439676bed844"},
		"Local/+375296254070@inoffice-00000001;2": {"Wait", "600", ""},
	}
	list := tab.List()
	if len(list) != len(want) {
		t.Fatalf("List() = %v, want 4 channels", names(list))
	}
	for _, ch := range list {
		w, ok := want[ch.Channel]
		if !ok {
			t.Errorf("unexpected channel %q", ch.Channel)
			continue
		}
		if ch.State != "Up" || ch.LinkedID != "1795337002.0" {
			t.Errorf("%s: state %q linkedid %q, want Up 1795337002.0", ch.Channel, ch.State, ch.LinkedID)
		}
		if ch.BridgeID != w.bridged {
			t.Errorf("%s: BridgeID %q, want %q", ch.Channel, ch.BridgeID, w.bridged)
		}
		if ch.Application != w.app || ch.AppData != w.data {
			t.Errorf("%s: application %s(%s), want %s(%s)", ch.Channel, ch.Application, ch.AppData, w.app, w.data)
		}
	}
	first := list[0]
	if first.Channel != "Local/150@inoffice-00000000;1" || first.UniqueID != "1795337002.0" {
		t.Errorf("oldest channel = %s (%s), want the originated leg", first.Channel, first.UniqueID)
	}
	if first.CallerIDNum != "150" || first.CallerIDName != "Desk 150" {
		t.Errorf("caller id = %q %q, want 150 / Desk 150", first.CallerIDNum, first.CallerIDName)
	}
	if n, calls := tab.Counts(); n != 4 || calls != 1 {
		t.Errorf("Counts() = %d, %d; want 4 channels, 1 call", n, calls)
	}
	ch, ok := tab.LiveForExtension("150")
	if !ok || ch.Channel != "Local/150@inoffice-00000000;1" {
		t.Errorf("LiveForExtension(150) = %q, %v", ch.Channel, ok)
	}
	if p := SpyPrefix(ch.Channel); p != "Local/150@inoffice-00000000" {
		t.Errorf("SpyPrefix = %q", p)
	}
}

// TestCaptureChain replays 05 → 07 → 08, which were captured one after the
// other on the same Asterisk: the table starts from 05's CoreShowChannels
// and follows the events of the spies and the hangups.
func TestCaptureChain(t *testing.T) {
	tab := New(Config{Now: newClock().Now})
	if tab.Synced() {
		t.Fatal("new table claims to be synced")
	}
	csc := readTranscript(t, "05-coreshowchannels")
	items := listItems(csc, "csc-1", "CoreShowChannel")
	if len(items) != 4 {
		t.Fatalf("capture 05 has %d CoreShowChannel items, want 4", len(items))
	}
	tab.Replace(items)
	if !tab.Synced() {
		t.Fatal("Replace did not mark the table synced")
	}
	if n, calls := tab.Counts(); n != 4 || calls != 1 {
		t.Fatalf("after 05: Counts() = %d, %d; want 4, 1", n, calls)
	}
	ch, ok := tab.ByUniqueID("1795337025.18")
	if !ok || ch.Channel != "Local/150@inoffice-00000009;1" || ch.Application != "Dial" ||
		ch.AppData != "Local/+375296254070@inoffice" || ch.BridgeID != "68863277-3149-422b-8f00-483f1470420b" {
		t.Fatalf("ByUniqueID(.18) = %+v, %v", ch, ok)
	}
	if ch.CallerIDNum != "" {
		t.Errorf("<unknown> caller id kept as %q", ch.CallerIDNum)
	}

	for _, m := range events(readTranscript(t, "07-chanspy")) {
		tab.Apply(m)
	}
	// CLI at the end of 07: 16 active channels; 7 linkedids (the CLI's
	// "8 active calls" counts differently: it is not a linkedid count).
	if n, calls := tab.Counts(); n != 16 || calls != 7 {
		t.Fatalf("after 07: Counts() = %d, %d; want 16, 7: %v", n, calls, names(tab.List()))
	}
	for _, ext := range []string{"151", "152", "153", "154", "155", "156"} {
		ch, ok := tab.LiveForExtension(ext)
		if !ok || ch.State != "Up" {
			t.Errorf("LiveForExtension(%s) = %q %q, %v", ext, ch.Channel, ch.State, ok)
		}
	}
	ch, ok = tab.LiveForExtension("150")
	if !ok || ch.Channel != "Local/150@inoffice-00000009;1" {
		t.Fatalf("LiveForExtension(150) = %q, %v", ch.Channel, ok)
	}

	for _, m := range events(readTranscript(t, "08-hangup")) {
		tab.Apply(m)
	}
	// 08 hangs up the original call (8a), a new 150 call by regex (8e) and
	// every spy (8h); the rest of the capture is inspected below.
	for _, ch := range tab.List() {
		if e, ok := ExtensionOf(ch.Channel); ok && e == "150" {
			t.Errorf("after 08: 150 still has live channel %s", ch.Channel)
		}
		if _, ok := tab.ByName(ch.Channel); !ok {
			t.Errorf("ByName(%q) misses a listed channel", ch.Channel)
		}
	}
	if _, ok := tab.ByUniqueID("1795337025.18"); ok {
		t.Error("hung-up channel .18 is still in the table")
	}
	if _, ok := tab.ByName("Local/150@inoffice-00000009;1"); ok {
		t.Error("hung-up channel still found by name")
	}
}

func TestApply(t *testing.T) {
	ev := func(kv ...string) *ami.Message {
		m := &ami.Message{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Add(kv[i], kv[i+1])
		}
		return m
	}
	newch := func(name, id, state string) *ami.Message {
		return ev("Event", "Newchannel", "Channel", name, "ChannelStateDesc", state,
			"CallerIDNum", "<unknown>", "Uniqueid", id, "Linkedid", id)
	}
	type check func(t *testing.T, tab *Table)
	has := func(name, id string) check {
		return func(t *testing.T, tab *Table) {
			t.Helper()
			ch, ok := tab.ByUniqueID(id)
			if !ok || ch.Channel != name {
				t.Errorf("ByUniqueID(%s) = %q, %v; want %q", id, ch.Channel, ok, name)
			}
			if ch2, ok := tab.ByName(name); !ok || ch2.UniqueID != id {
				t.Errorf("ByName(%s) = %q, %v; want %s", name, ch2.UniqueID, ok, id)
			}
		}
	}
	count := func(want int) check {
		return func(t *testing.T, tab *Table) {
			t.Helper()
			if n, _ := tab.Counts(); n != want {
				t.Errorf("%d channels %v, want %d", n, names(tab.List()), want)
			}
		}
	}
	field := func(id string, get func(protocol.Channel) string, want string) check {
		return func(t *testing.T, tab *Table) {
			t.Helper()
			ch, _ := tab.ByUniqueID(id)
			if got := get(ch); got != want {
				t.Errorf("%s: got %q, want %q", id, got, want)
			}
		}
	}
	cases := []struct {
		name    string
		in      []*ami.Message
		changed []bool
		checks  []check
	}{
		{
			name:    "newchannel then hangup",
			in:      []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Ring"), ev("Event", "Hangup", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1")},
			changed: []bool{true, true},
			checks:  []check{count(0)},
		},
		{
			name: "newstate updates state and caller id",
			in: []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Ring"),
				ev("Event", "Newstate", "Channel", "PJSIP/150-00000001", "ChannelStateDesc", "Up", "ConnectedLineNum", "+375296254070", "Uniqueid", "1.1")},
			changed: []bool{true, true},
			checks: []check{
				field("1.1", func(c protocol.Channel) string { return c.State }, "Up"),
				field("1.1", func(c protocol.Channel) string { return c.ConnectedNum }, "+375296254070"),
				field("1.1", func(c protocol.Channel) string { return c.CallerIDNum }, ""),
			},
		},
		{
			name: "newexten sets the application",
			in: []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Ring"),
				ev("Event", "Newexten", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1", "Application", "Queue", "AppData", "support,t")},
			changed: []bool{true, true},
			checks: []check{
				field("1.1", func(c protocol.Channel) string { return c.Application + "(" + c.AppData + ")" }, "Queue(support,t)"),
			},
		},
		{
			name: "rename moves the name index",
			in: []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Up"),
				ev("Event", "Rename", "Channel", "PJSIP/150-00000001", "Newname", "PJSIP/150-00000001<MASQ>", "Uniqueid", "1.1")},
			changed: []bool{true, true},
			checks: []check{has("PJSIP/150-00000001<MASQ>", "1.1"), func(t *testing.T, tab *Table) {
				if _, ok := tab.ByName("PJSIP/150-00000001"); ok {
					t.Error("old name still resolves")
				}
			}},
		},
		{
			name: "bridge enter and leave",
			in: []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Up"),
				ev("Event", "BridgeEnter", "BridgeUniqueid", "b1", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1"),
				ev("Event", "BridgeLeave", "BridgeUniqueid", "b1", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1")},
			changed: []bool{true, true, true},
			checks:  []check{field("1.1", func(c protocol.Channel) string { return c.BridgeID }, "")},
		},
		{
			name: "bridge events do not create channels",
			in: []*ami.Message{
				ev("Event", "BridgeLeave", "BridgeUniqueid", "b1", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1")},
			changed: []bool{false},
			checks:  []check{count(0)},
		},
		{
			name: "a missed newchannel is recovered from newstate",
			in: []*ami.Message{
				ev("Event", "Newstate", "Channel", "SIP/trunk-a-0000000c", "ChannelStateDesc", "Ringing", "Uniqueid", "1.7", "Linkedid", "1.6")},
			changed: []bool{true},
			checks:  []check{has("SIP/trunk-a-0000000c", "1.7"), count(1)},
		},
		{
			name: "unrelated events are ignored",
			in: []*ami.Message{
				ev("Event", "CEL", "EventName", "CHAN_START", "Channel", "PJSIP/150-00000001", "UniqueID", "1.1"),
				ev("Event", "VarSet", "Channel", "PJSIP/150-00000001", "Uniqueid", "1.1", "Variable", "X", "Value", "1"),
				ev("Response", "Success")},
			changed: []bool{false, false, false},
			checks:  []check{count(0)},
		},
		{
			name: "disconnected clears",
			in: []*ami.Message{newch("PJSIP/150-00000001", "1.1", "Up"),
				ev("Event", "SwitchboardDisconnected", "Error", "EOF")},
			changed: []bool{true, true},
			checks: []check{count(0), func(t *testing.T, tab *Table) {
				if tab.Synced() {
					t.Error("still synced after a disconnect")
				}
			}},
		},
		{
			name:    "events without uniqueid are ignored",
			in:      []*ami.Message{ev("Event", "Newchannel", "Channel", "PJSIP/150-00000001")},
			changed: []bool{false},
			checks:  []check{count(0)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := New(Config{Now: newClock().Now})
			for i, m := range tc.in {
				if got := tab.Apply(m); got != tc.changed[i] {
					t.Errorf("Apply(%s) = %v, want %v", m.Event(), got, tc.changed[i])
				}
			}
			for _, c := range tc.checks {
				c(t, tab)
			}
		})
	}
}

func TestReplaceKeepsStartAndUsesDuration(t *testing.T) {
	clock := newClock()
	tab := New(Config{Now: clock.Now})
	tab.Apply(&ami.Message{Headers: []ami.Header{{Key: "Event", Value: "Newchannel"}, {Key: "Channel", Value: "PJSIP/150-00000001"}, {Key: "Uniqueid", Value: "1.1"}}})
	known, _ := tab.ByUniqueID("1.1")
	item := func(name, id, dur string) *ami.Message {
		return ami.NewAction("x", "Event", "CoreShowChannel", "Channel", name, "Uniqueid", id, "Linkedid", id,
			"ChannelStateDesc", "Up", "Duration", dur)
	}
	tab.Replace([]*ami.Message{item("PJSIP/150-00000001", "1.1", "00:01:00"), item("PJSIP/151-00000002", "1.2", "01:00:05")})
	got, _ := tab.ByUniqueID("1.1")
	if !got.StartedAt.Equal(known.StartedAt) {
		t.Errorf("known channel StartedAt %v, want it kept as %v", got.StartedAt, known.StartedAt)
	}
	other, _ := tab.ByUniqueID("1.2")
	if age := clock.Now().Sub(other.StartedAt); age < time.Hour || age > time.Hour+10*time.Second {
		t.Errorf("StartedAt from Duration 01:00:05 is %v old", age)
	}
	if list := tab.List(); len(list) != 2 || list[0].UniqueID != "1.2" {
		t.Errorf("List() = %v, want the hour-old channel first", names(list))
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"00:00:00": 0, "00:01:02": 62 * time.Second, "123:00:00": 123 * time.Hour,
		"": 0, "1:2": 0, "aa:00:00": 0, "-1:00:00": 0,
	} {
		if got := parseDuration(in); got != want {
			t.Errorf("parseDuration(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestExtensionOfAndSpyPrefix(t *testing.T) {
	cases := []struct {
		name, ext string
		ok        bool
		prefix    string
	}{
		{"Local/150@inoffice-00000009;1", "150", true, "Local/150@inoffice-00000009"},
		{"Local/150@inoffice-00000009;2", "", false, "Local/150@inoffice-00000009"},
		{"Local/+375296254070@inoffice-0000000a;1", "+375296254070", true, "Local/+375296254070@inoffice-0000000a"},
		{"Local/101@from-queue-0000001f;1", "101", true, "Local/101@from-queue-0000001f"},
		{"PJSIP/150-0000002a", "150", true, "PJSIP/150-0000002a"},
		{"SIP/150-0000000b", "150", true, "SIP/150-0000000b"},
		{"PJSIP/trunk-a-0000000c", "trunk-a", true, "PJSIP/trunk-a-0000000c"},
		{"PJSIP/150", "", false, "PJSIP/150"},
		{"PJSIP/-0001", "", false, "PJSIP/-0001"},
		{"Local/@ctx-1;1", "", false, "Local/@ctx-1"},
		{"garbage", "", false, "garbage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ext, ok := ExtensionOf(tc.name)
			if ext != tc.ext || ok != tc.ok {
				t.Errorf("ExtensionOf = %q, %v; want %q, %v", ext, ok, tc.ext, tc.ok)
			}
			if p := SpyPrefix(tc.name); p != tc.prefix {
				t.Errorf("SpyPrefix = %q, want %q", p, tc.prefix)
			}
		})
	}
}

func TestLiveForExtensionPrefersUpThenOldest(t *testing.T) {
	newch := func(name, id, state string) *ami.Message {
		return ami.NewAction("x", "Event", "Newchannel", "Channel", name, "Uniqueid", id, "ChannelStateDesc", state)
	}
	cases := []struct {
		name string
		in   []*ami.Message
		ext  string
		want string
	}{
		{"up wins over older ringing", []*ami.Message{newch("PJSIP/150-00000001", "1", "Ringing"), newch("PJSIP/150-00000002", "2", "Up")}, "150", "PJSIP/150-00000002"},
		{"oldest of two up", []*ami.Message{newch("PJSIP/150-00000001", "1", "Up"), newch("Local/150@inoffice-00000002;1", "2", "Up")}, "150", "PJSIP/150-00000001"},
		{"1500 is not 150", []*ami.Message{newch("PJSIP/1500-00000001", "1", "Up")}, "150", ""},
		{"local ;2 is not the phone", []*ami.Message{newch("Local/150@inoffice-00000001;2", "1", "Up")}, "150", ""},
		{"empty extension", []*ami.Message{newch("PJSIP/150-00000001", "1", "Up")}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := New(Config{Now: newClock().Now})
			for _, m := range tc.in {
				tab.Apply(m)
			}
			ch, ok := tab.LiveForExtension(tc.ext)
			if ch.Channel != tc.want || ok != (tc.want != "") {
				t.Errorf("LiveForExtension(%q) = %q, %v; want %q", tc.ext, ch.Channel, ok, tc.want)
			}
		})
	}
}

// TestConcurrentFeedAndRead runs under -race: one feeder, several readers.
func TestConcurrentFeedAndRead(t *testing.T) {
	msgs := events(readTranscript(t, "03-originate-dial-bridge"))
	tab := New(Config{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab.List()
				tab.Counts()
				tab.LiveForExtension("150")
				tab.ByName("Local/150@inoffice-00000000;1")
			}
		})
	}
	for range 20 {
		for _, m := range msgs {
			tab.Apply(m)
		}
		tab.Replace(nil)
	}
	close(stop)
	wg.Wait()
}

func FuzzExtensionOf(f *testing.F) {
	for _, s := range []string{"Local/150@inoffice-00000009;1", "PJSIP/150-0000002a", "Local/;1", "/-", "a/b-c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ext, ok := ExtensionOf(name)
		if ok && ext == "" {
			t.Fatalf("ExtensionOf(%q) ok with empty extension", name)
		}
		p := SpyPrefix(name)
		if len(p) > len(name) || name[:len(p)] != p {
			t.Fatalf("SpyPrefix(%q) = %q is not a prefix", name, p)
		}
	})
}

// TestLateNewCalleridAfterHangup: after an attended transfer Asterisk
// 22.10.1 sends the target's NewCallerid after its Hangup (capture 20,
// steps 20k-m); the hung-up channel must not come back into the table.
func TestLateNewCalleridAfterHangup(t *testing.T) {
	tab := New(Config{})
	for _, m := range readTranscript(t, "20-call-control") {
		tab.Apply(m)
	}
	if live := tab.List(); len(live) != 0 {
		t.Fatalf("every channel of capture 20 hung up, the table still has %+v", live)
	}
	tab = New(Config{})
	ev := func(kv ...string) *ami.Message {
		m := &ami.Message{}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Add(kv[i], kv[i+1])
		}
		return m
	}
	tab.Apply(ev("Event", "Newchannel", "Channel", "Local/160@inoffice-00000005;2", "Uniqueid", "9.11", "Linkedid", "9.1"))
	tab.Apply(ev("Event", "Hangup", "Channel", "Local/160@inoffice-00000005;2", "Uniqueid", "9.11"))
	if tab.Apply(ev("Event", "NewCallerid", "Channel", "Local/160@inoffice-00000005;2", "Uniqueid", "9.11", "CallerIDNum", "+375296254070")) {
		t.Fatal("a NewCallerid after the Hangup brought the channel back")
	}
	if _, ok := tab.ByUniqueID("9.11"); ok {
		t.Fatal("hung-up channel in the table")
	}
}
