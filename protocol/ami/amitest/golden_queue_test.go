package amitest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// A selective replay compares, per step of a capture, the Response and
// the events a scenario is about, on the headers that matter to it: the
// fake sends no DeviceStateChange, CEL or BRIDGEPEER VarSet, and the
// channel-state headers of a call set up through the CLI in the capture
// are not the fake's. What is compared is byte for byte after
// normalisation (uniqueids, Local counters, clock readings, MixMonitor
// ids); list items whose order is Asterisk's hash order are compared as a
// set.
type selective struct {
	events map[string]bool // events compared; Responses always are
	keys   []string        // headers compared, in this order
	// variables: VarSet events compared are those of these variables.
	variables map[string]bool
	// unordered events are compared as a set within a step.
	unordered map[string]bool
	// beforeStep, when set, runs before each step is written.
	beforeStep func(title string)
}

var reMixID = regexp.MustCompile(`0x[0-9a-f]{6,16}`)

// project reduces one normalised message to the compared headers, or ""
// when the message is not compared.
func (sel selective) project(norm string) string {
	fields, order := messageFields(norm)
	ev, isEvent := fields["Event"]
	switch {
	case !isEvent && fields["Response"] == "":
		return ""
	case isEvent && !sel.events[ev]:
		return ""
	case ev == "VarSet" && !sel.variables[fields["Variable"]]:
		return ""
	}
	var parts []string
	if !isEvent {
		// A Response is compared whole: every header, in order.
		for _, k := range order {
			parts = append(parts, k+"="+fields[k])
		}
	} else {
		for _, k := range sel.keys {
			if v, ok := fields[k]; ok {
				parts = append(parts, k+"="+v)
			}
		}
	}
	s := strings.Join(parts, " ")
	s = reMixID.ReplaceAllString(s, "<MIXID>")
	for _, k := range []string{"LoginTime", "LastPause", "LastCall"} {
		s = regexp.MustCompile(k+`=[1-9]\d*`).ReplaceAllString(s, k+"=<T>")
	}
	return s
}

// replaySelective replays the capture against srv, the steps after skip
// of them, and compares each step's projection.
func replaySelective(t *testing.T, srv *Server, name string, sel selective, skipSteps int) {
	t.Helper()
	tr := loadTranscript(t, name)
	rc := dialReplay(t, srv.Addr())
	rc.line()
	nw, ng := newNormalizer(), newNormalizer()
	ids := map[string]string{}
	view := func(n *normalizer, msgs [][]byte) []string {
		var out, set []string
		for _, m := range msgs {
			p := sel.project(n.message(m))
			if p == "" {
				continue
			}
			if sel.unordered[strings.TrimPrefix(firstLine(m), "Event: ")] {
				set = append(set, p)
				continue
			}
			out = append(out, p)
		}
		slices.Sort(set)
		return append(out, set...)
	}
	for i, st := range tr.steps {
		var want [][]byte
		for k, m := range st.recv {
			if !st.external[k] {
				want = append(want, m)
			}
		}
		// MixMonitor ids are Asterisk's pointers: the capture's become
		// the ones the fake gave out for the same recordings.
		send := st.send
		for capID, fakeID := range ids {
			send = bytes.ReplaceAll(send, []byte(capID), []byte(fakeID))
		}
		// So are the Local channel counters: a channel the capture named
		// is the fake's channel of the same token.
		send = renameChannels(send, nw, ng)
		if sel.beforeStep != nil {
			sel.beforeStep(st.title)
		}
		rc.write(send)
		if i < skipSteps {
			// Login and set-up steps: read what they answer, compare nothing.
			for range countSelected(nw, sel, want) {
				rc.mustMessage()
			}
			continue
		}
		w := view(nw, want)
		var got [][]byte
		deadline := time.Now().Add(5 * time.Second)
		for countSelected(ng, sel, got) < len(w) && time.Now().Before(deadline) {
			m, err := rc.message(time.Until(deadline))
			if err != nil {
				break
			}
			got = append(got, m)
		}
		learnIDs(ids, want, got)
		g := view(ng, got)
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Fatalf("step %q differs\n--- capture\n%s\n--- fake\n%s", st.title, strings.Join(w, "\n"), strings.Join(g, "\n"))
		}
	}
	for _, m := range rc.sentinel() {
		if sel.project(ng.message(m)) != "" {
			t.Errorf("unexpected message after the last step: %q", m)
		}
	}
}

// countSelected counts the compared messages, normalising with a copy so
// tokens are numbered in the order view sees them.
func countSelected(n *normalizer, sel selective, msgs [][]byte) int {
	c := 0
	cp := newNormalizerLike(n)
	for _, m := range msgs {
		if sel.project(cp.message(m)) != "" {
			c++
		}
	}
	return c
}

func newNormalizerLike(n *normalizer) *normalizer {
	cp := newNormalizer()
	for k, v := range n.uids {
		cp.uids[k] = v
	}
	for k, v := range n.hexes {
		cp.hexes[k] = v
	}
	for k, v := range n.bridges {
		cp.bridges[k] = v
	}
	return cp
}

var queueEvents = selective{
	events: map[string]bool{
		"QueueParams": true, "QueueMember": true, "QueueEntry": true, "QueueStatusComplete": true,
		"QueueSummary": true, "QueueSummaryComplete": true, "QueueMemberAdded": true,
		"QueueMemberPause": true, "QueueMemberPenalty": true, "QueueMemberRemoved": true,
	},
	keys: []string{
		"Event", "Privilege", "Queue", "Max", "Strategy", "Calls", "Holdtime", "TalkTime", "Completed", "Abandoned",
		"ServiceLevel", "ServicelevelPerf", "ServicelevelPerf2", "Weight", "Name", "MemberName", "Location", "Interface",
		"StateInterface", "Membership", "Penalty", "CallsTaken", "LastCall", "LastPause", "LoginTime", "InCall", "Status",
		"Paused", "PausedReason", "Ringinuse", "Wrapuptime", "LoggedIn", "Available", "Callers", "HoldTime",
		"LongestHoldTime", "ActionID", "EventList", "ListItems",
	},
	unordered: map[string]bool{"QueueMember": true},
}

// TestGoldenQueueAdmin replays capture 14: every QueueStatus, QueueSummary,
// QueueAdd, QueuePause, QueuePenalty and QueueRemove, their errors and the
// QueueMember* events that follow them.
func TestGoldenQueueAdmin(t *testing.T) {
	srv := NewServer(t, WithAuthFailDelay(20*time.Millisecond))
	replaySelective(t, srv, "14-queue-admin", queueEvents, 1)
}

var mixMonitorEvents = selective{
	events: map[string]bool{"MixMonitorStart": true, "MixMonitorStop": true, "MixMonitorMute": true, "VarSet": true,
		"RequestBadFormat": true},
	keys:      []string{"Event", "Privilege", "Channel", "Uniqueid", "Variable", "Value", "Direction", "State", "RequestType"},
	variables: map[string]bool{"MIXMONITOR_FILENAME": true, "MIXMON_ID": true},
}

// TestGoldenMixMonitor replays captures 15 and 15b on a call set up as
// the capture tool did (its channel names are the fake's first ones):
// MixMonitor with a relative file, a sub-folder and i(VAR), the mute that
// is Asterisk 22's pause, StopMixMonitor with and without an id, the
// actions 22 lacks, a recording left running when the call hangs up (no
// MixMonitorStop), and every failure.
func TestGoldenMixMonitor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		priorCalls int // calls placed and ended before, so Local counters match
	}{
		{"15-mixmonitor", 0},
		{"15b-mixmonitor-failures", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer(t, WithAuthFailDelay(20*time.Millisecond), WithAnswerWait(-1),
				func(c *Config) { c.MonitorDir = "/opt/pbx/run/spool/monitor" })
			for range tc.priorCalls {
				if _, err := srv.StartCall("150", "+375296254070"); err != nil {
					t.Fatal(err)
				}
				for len(srv.Channels()) > 0 {
					_ = srv.Hangup(srv.Channels()[0].Name, 16)
				}
			}
			if _, err := srv.StartCall("150", "+375296254070"); err != nil {
				t.Fatal(err)
			}
			replaySelective(t, srv, tc.name, mixMonitorEvents, 1)
		})
	}
}

func TestWithRecordingsWritesTheFile(t *testing.T) {
	dir := t.TempDir()
	srv := NewServer(t, WithRecordings(dir), WithAnswerWait(-1))
	if _, err := srv.StartCall("150", "151"); err != nil {
		t.Fatal(err)
	}
	rc := dialReplay(t, srv.Addr())
	rc.line()
	rc.write([]byte("Action: Login\r\nUsername: switchboard\r\nSecret: switchboard-secret\r\n\r\n"))
	rc.mustMessage()
	ch := srv.Channels()[0].Name
	rc.write(fmt.Appendf(nil, "Action: MixMonitor\r\nActionID: m1\r\nChannel: %s\r\nFile: sub/x.wav\r\n\r\n", ch))
	for {
		if m := rc.mustMessage(); bytes.HasPrefix(m, []byte("Event: MixMonitorStart")) {
			break
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "sub", "x.wav"))
	if err != nil || len(b) != 44 || !bytes.HasPrefix(b, []byte("RIFF")) {
		t.Fatalf("recording: %d bytes %q, %v", len(b), b, err)
	}
}

// learnIDs pairs the MixMonitorIDs of the capture's Responses with the
// fake's, in order.
func learnIDs(ids map[string]string, want, got [][]byte) {
	of := func(msgs [][]byte) []string {
		var out []string
		for _, m := range msgs {
			if !bytes.HasPrefix(m, []byte("Response:")) {
				continue
			}
			for _, l := range strings.Split(string(m), "\r\n") {
				if v, ok := strings.CutPrefix(l, "MixMonitorID: "); ok {
					out = append(out, v)
				}
			}
		}
		return out
	}
	w, g := of(want), of(got)
	for i := range min(len(w), len(g)) {
		ids[w[i]] = g[i]
	}
}

// renameChannels rewrites the Local counters ("-00000023;") of the
// capture's channel names in an action into the fake's, by the token both
// normalisers gave them.
func renameChannels(send []byte, capture, fake *normalizer) []byte {
	byToken := map[string]string{}
	for hex, tok := range fake.hexes {
		byToken[tok] = hex
	}
	for hex, tok := range capture.hexes {
		if f, ok := byToken[tok]; ok && f != hex {
			send = bytes.ReplaceAll(send, []byte("-"+hex+";"), []byte("-"+f+";"))
		}
	}
	return send
}
