package realpbx

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// TestRealAsteriskQueuesAndRecordings runs the queue and recording
// operations against the real Asterisk, through the API: queue inbound
// (ringall, static members Local/101 and Local/102@from-queue/n) and
// MixMonitor into the lab's spool directory.
func TestRealAsteriskQueuesAndRecordings(t *testing.T) {
	l := newLab(t)
	june := l.newTenant("0367", "june")
	l.agentArgs = []string{"--recordings-dir", l.monitorDir()}
	l.startAgent(june, asterisktest.User)
	for _, tc := range []struct {
		name string
		run  func(l *lab, tn *tenant)
	}{
		{"pausing_101_sends_the_next_caller_to_102", testPauseSendsCallerTo102},
		{"queue_members_added_and_removed", testQueueMembers},
		{"recording_downloads_through_the_api", testRecording},
		{"recording_ends_with_the_call", testRecordingEndsWithCall},
		{"least_privilege_queues_and_recordings", testCallCentrePrivileges},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := l.with(t)
			lt.clean(june)
			tc.run(lt, june)
		})
	}
}

// monitorDir is where the lab's MixMonitor writes (asterisk.conf
// astspooldir DIR/run/spool).
func (l *lab) monitorDir() string { return filepath.Join(l.pbx.Dir(), "run", "spool", "monitor") }

type queueMember struct {
	Extension    string `json:"extension"`
	Interface    string `json:"interface"`
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason"`
	Membership   string `json:"membership"`
}

func (l *lab) queueMembers(tn *tenant) map[string]queueMember {
	l.t.Helper()
	var q struct {
		Members []queueMember `json:"members"`
	}
	code, body := l.do("GET", "/v1/queues/inbound", tn.jwt, nil)
	mustJSON(l.t, "GET /v1/queues/inbound", code, body, http.StatusOK, &q)
	out := map[string]queueMember{}
	for _, m := range q.Members {
		out[m.Extension] = m
	}
	return out
}

func (l *lab) pause(tn *tenant, path string, paused bool, reason string) {
	l.t.Helper()
	body := map[string]any{"paused": paused}
	if reason != "" {
		body["reason"] = reason
	}
	code, b := l.do("POST", path, tn.jwt, body)
	mustJSON(l.t, "POST "+path, code, b, http.StatusOK, nil)
}

// queueCaller puts a customer in queue inbound the way a PBX's trunk
// would reach it (800 in context callcenter) and returns its call id.
func (l *lab) queueCaller(cid string) string {
	l.t.Helper()
	c := l.dialAMI(asterisktest.User)
	id := "realpbx-q-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	if _, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/800@callcenter", "Application", "Wait", "Data", "600",
		"CallerID", `"Customer" <`+cid+`>`, "ChannelId", id)); err != nil {
		l.t.Fatalf("originate the customer's call: %v", err)
	}
	return id
}

// testPauseSendsCallerTo102: operator 101 paused through the API (in
// every queue: the route without {queue}) is paused in Asterisk; the next
// caller of queue inbound rings 102 only, and call.answered names 102.
func testPauseSendsCallerTo102(l *lab, tn *tenant) {
	l.pause(tn, "/v1/queues/members/101/pause", true, "lunch")
	defer l.pause(tn, "/v1/queues/inbound/members/101/pause", false, "")
	if m := l.queueMembers(tn)["101"]; !m.Paused || m.PausedReason != "lunch" || m.Interface != "Local/101@from-queue/n" {
		l.t.Fatalf("101 after the pause: %+v", m)
	}
	out, err := l.pbx.CLI(l.ctx(), "queue show inbound")
	if err != nil || !strings.Contains(out, "Local/101@from-queue/n") || !strings.Contains(out, "paused:lunch") {
		l.t.Fatalf("queue show inbound: %v\n%s", err, out)
	}
	paused := l.waitEvent(tn, "queue.member_paused of 101", func(e Event) bool {
		return e.Type == protocol.EventQueueMemberPaused && e.Extension == "101" && e.Reason == "lunch"
	})
	l.t.Logf("queue.member_paused: %+v", paused.Event)

	id := l.queueCaller("+375291112233")
	ans := l.waitEvent(tn, "call.answered of the queue call", func(e Event) bool {
		return e.Type == protocol.EventCallAnswered && (e.CallID == id || e.LinkedID == id)
	})
	if ans.AnsweredBy != "102" || ans.From != "+375291112233" {
		l.t.Errorf("call.answered %s: want answered_by 102 while 101 is paused", ans)
	}
	// Asterisk agrees: 102's phone is the one up, 101's never rang.
	chans := l.channelsWhere("102 on the call", func(cs []asterisktest.Channel) bool {
		_, ok := asterisktest.Find(cs, func(c asterisktest.Channel) bool {
			return strings.HasPrefix(c.Name, "Local/102@from-queue-") && c.State == "Up"
		})
		return ok
	})
	if c, rang := asterisktest.Find(chans, func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, "Local/101@from-queue-") }); rang {
		l.t.Errorf("paused 101 was rung: %+v", c)
	}
	left := l.waitEvent(tn, "queue.caller_left", func(e Event) bool { return e.Type == protocol.EventQueueCallerLeft && e.CallID == ans.CallID })
	if left.Reason != protocol.LeftAnswered || left.AnsweredBy != "102" || left.Queue != "inbound" || left.HoldTimeS == nil {
		l.t.Errorf("queue.caller_left: %+v", left.Event)
	}
	l.waitEvent(tn, "queue.caller_joined", func(e Event) bool {
		return e.Type == protocol.EventQueueCallerJoined && e.CallID == ans.CallID && e.From == "+375291112233"
	})
	l.t.Logf("queue call %s: %v", ans.CallID, types(l.callEvents(tn, ans.CallID)))
}

// testQueueMembers: 103 added through the API is a dynamic member in
// Asterisk; a static member cannot be removed (409); 103 can.
func testQueueMembers(l *lab, tn *tenant) {
	code, body := l.do("POST", "/v1/queues/inbound/members", tn.jwt, map[string]any{"extension": "103", "name": "Operator 103", "penalty": 2})
	mustJSON(l.t, "add 103", code, body, http.StatusCreated, nil)
	out, err := l.pbx.CLI(l.ctx(), "queue show inbound")
	if err != nil || !strings.Contains(out, "Operator 103 (Local/103@from-queue/n") || !strings.Contains(out, "dynamic") {
		l.t.Fatalf("queue show inbound after the add: %v\n%s", err, out)
	}
	code, body = l.do("PUT", "/v1/queues/inbound/members/103/penalty", tn.jwt, map[string]any{"penalty": 4})
	mustJSON(l.t, "penalty of 103", code, body, http.StatusOK, nil)
	code, body = l.do("DELETE", "/v1/queues/inbound/members/101", tn.jwt, nil)
	if code != http.StatusConflict || !bytes.Contains(body, []byte("member_not_dynamic")) {
		l.t.Errorf("removing static 101: %d %s", code, body)
	}
	code, body = l.do("DELETE", "/v1/queues/inbound/members/103", tn.jwt, nil)
	mustJSON(l.t, "remove 103", code, body, http.StatusOK, nil)
	if out, _ := l.pbx.CLI(l.ctx(), "queue show inbound"); strings.Contains(out, "Local/103@") {
		l.t.Errorf("103 still a member:\n%s", out)
	}
	code, body = l.do("GET", "/v1/queues/nosuchqueue", tn.jwt, nil)
	if code != http.StatusNotFound {
		l.t.Errorf("unknown queue: %d %s", code, body)
	}
	for _, typ := range []string{protocol.EventQueueMemberAdded, protocol.EventQueueMemberRemoved} {
		l.waitEvent(tn, typ+" of 103", func(e Event) bool { return e.Type == typ && e.Extension == "103" })
	}
}

type recording struct {
	ID          string     `json:"id"`
	RecordingID string     `json:"recording_id"`
	File        string     `json:"file"`
	URL         string     `json:"url"`
	StoppedAt   *time.Time `json:"stopped_at"`
}

// startRecording records call id through the API and waits for its file
// in Asterisk's spool directory.
func (l *lab) startRecording(tn *tenant, id string) (recording, []byte) {
	l.t.Helper()
	var res struct {
		Recordings []recording `json:"recordings"`
	}
	code, body := l.do("POST", "/v1/calls/"+id+"/recording/start", tn.jwt, nil)
	mustJSON(l.t, "POST recording/start", code, body, http.StatusCreated, &res)
	if len(res.Recordings) != 1 {
		l.t.Fatalf("recording/start answered %s", body)
	}
	rec := res.Recordings[0]
	var file []byte
	eventually(l.t, waitShort, "the recording's file in "+l.monitorDir(), func() bool {
		b, err := os.ReadFile(filepath.Join(l.monitorDir(), rec.File))
		file = b
		return err == nil && len(b) >= 44
	})
	return rec, file
}

// testRecording: a bridged call is recorded, muted, and its file appears
// in Asterisk's spool directory and downloads through the API, whole and
// by range; stop ends it; GET /v1/calls/{id} lists it.
func testRecording(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.waitEvent(tn, "call.bridged of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })
	rec, file := l.startRecording(tn, id)
	if !bytes.HasPrefix(file, []byte("RIFF")) {
		l.t.Fatalf("the file is not a WAV: %q", file)
	}
	l.waitEvent(tn, "recording.started", func(e Event) bool {
		return e.Type == protocol.EventRecordingStarted && e.RecordingID == rec.RecordingID
	})

	code, body := l.do("POST", "/v1/calls/"+id+"/recording/mute", tn.jwt, map[string]any{"direction": "both", "muted": true})
	mustJSON(l.t, "mute", code, body, http.StatusOK, nil)
	code, body = l.do("POST", "/v1/calls/"+id+"/recording/mute", tn.jwt, map[string]any{"direction": "both", "muted": false})
	mustJSON(l.t, "unmute", code, body, http.StatusOK, nil)

	code, got := l.download(tn, rec.URL, "")
	if code != http.StatusOK || !bytes.Equal(got, file) {
		l.t.Fatalf("download: %d, %d bytes, want the %d bytes of %s", code, len(got), len(file), rec.File)
	}
	code, got = l.download(tn, rec.URL, "bytes=0-3")
	if code != http.StatusPartialContent || string(got) != "RIFF" {
		l.t.Errorf("range download: %d %q", code, got)
	}

	code, body = l.do("POST", "/v1/calls/"+id+"/recording/stop", tn.jwt, nil)
	mustJSON(l.t, "stop", code, body, http.StatusOK, nil)
	l.waitEvent(tn, "recording.stopped", func(e Event) bool {
		return e.Type == protocol.EventRecordingStopped && e.RecordingID == rec.RecordingID
	})
	var detail struct {
		Recordings []recording `json:"recordings"`
	}
	code, body = l.do("GET", "/v1/calls/"+id, tn.key, nil)
	mustJSON(l.t, "GET /v1/calls/{id}", code, body, http.StatusOK, &detail)
	if len(detail.Recordings) != 1 || detail.Recordings[0].ID != rec.ID || detail.Recordings[0].StoppedAt == nil {
		l.t.Errorf("the call's recordings: %s", body)
	}
	l.t.Logf("recording %s (%s, %d bytes) of call %s", rec.ID, rec.File, len(file), id)
}

// download GETs a recording with an optional Range.
func (l *lab) download(tn *tenant, path, rng string) (int, []byte) {
	l.t.Helper()
	req, err := http.NewRequest("GET", l.base+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tn.jwt)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		l.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		l.t.Fatalf("GET %s: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode < 300 && ct != "audio/wav" {
		l.t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, b.Bytes()
}

// testRecordingEndsWithCall: Asterisk sends no MixMonitorStop when the
// recorded channel hangs up; recording.stopped still comes, before
// call.ended.
func testRecordingEndsWithCall(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.waitEvent(tn, "call.bridged of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })
	rec, _ := l.startRecording(tn, id)
	code, body := l.do("DELETE", "/v1/calls/"+id, tn.key, nil)
	mustJSON(l.t, "hang up the recorded call", code, body, http.StatusOK, nil)
	l.waitEvent(tn, "call.ended", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	var order []string
	for _, e := range l.callEvents(tn, id) {
		if e.Type == protocol.EventRecordingStopped || e.Type == protocol.EventCallEnded {
			order = append(order, fmt.Sprintf("%s(%s)", e.Type, e.Reason))
		}
	}
	if len(order) != 2 || order[0] != "recording.stopped(hangup)" || !strings.HasPrefix(order[1], "call.ended") {
		l.t.Errorf("end of %s (recording %s): %v", id, rec.ID, order)
	}
}

// testCallCentrePrivileges: with the least privilege of
// manager.conf.example (write and read agent, no system), queue member
// changes work and are confirmed, and recording_start is refused by
// Asterisk (MixMonitor needs write=system); an AMI user that may change
// members but not read their events gets not_confirmed, though Asterisk
// did the change.
func testCallCentrePrivileges(l *lab, _ *tenant) {
	minimal := l.newTenant("0368", "minpriv")
	l.startAgent(minimal, asterisktest.MinUser)
	defer l.clean(minimal)
	l.pause(minimal, "/v1/queues/inbound/members/102/pause", true, "least-privilege")
	l.pause(minimal, "/v1/queues/inbound/members/102/pause", false, "")

	id := l.originate(minimal, "150", "+375296254070")
	l.waitEvent(minimal, "call.bridged of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })
	code, body := l.do("POST", "/v1/calls/"+id+"/recording/start", minimal.jwt, nil)
	if code != http.StatusBadGateway || !bytes.Contains(body, []byte("ami_error")) || !bytes.Contains(body, []byte("Permission denied")) {
		l.t.Errorf("recording without write=system: %d %s", code, body)
	}

	blind := l.newTenant("0369", "blind")
	l.startAgent(blind, asterisktest.BlindUser)
	code, body = l.do("POST", "/v1/queues/inbound/members/102/pause", blind.jwt, map[string]any{"paused": true, "reason": "blind"})
	if code != http.StatusBadGateway || !bytes.Contains(body, []byte("not_confirmed")) {
		l.t.Errorf("pause without read=agent: %d %s", code, body)
	}
	out, _ := l.pbx.CLI(l.ctx(), "queue show inbound")
	if !strings.Contains(out, "paused:blind") {
		l.t.Errorf("Asterisk did pause 102 (the agent could not confirm it):\n%s", out)
	}
	l.pause(minimal, "/v1/queues/inbound/members/102/pause", false, "")
	l.t.Logf("not_confirmed answer: %s", body)
}
