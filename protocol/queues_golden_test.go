package protocol

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// queueGoldenFrames are version 3's queue and recording messages as they
// go on the wire: a request of each new kind, their results, the events
// (with the fields they added) and a body stream.
func queueGoldenFrames(t *testing.T) []golden {
	args := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	deadline := time.Date(2026, 12, 6, 4, 1, 54, 0, time.UTC)
	at := deadline.Add(-time.Second)
	hold := 7
	return []golden{
		{3, "request-queue-member-pause", Request{ID: "req-1", Op: OpQueueMemberPause, Deadline: deadline,
			Args: args(QueueMemberPauseArgs{Extension: "101", Paused: true, Reason: "lunch"})}},
		{3, "request-recording-fetch", Request{ID: "req-2", Op: OpRecordingFetch, Deadline: deadline,
			Args: args(RecordingFetchArgs{RecordingID: "rec-20261206-0123456789abcdef", Offset: 8, Length: 4})}},
		{3, "response-queue-member", Response{ID: "req-1", Result: args(QueueMemberResult{Members: []QueueMember{{
			Queue: "inbound", Name: "Operator 101", Extension: "101", Interface: "Local/101@from-queue/n",
			StateInterface: "Local/101@from-queue/n", Status: MemberNotInUse, Paused: true, PausedReason: "lunch",
			LastPause: &at, LoginTime: &at, Membership: "static"}}})}},
		{3, "response-not-confirmed", Response{ID: "req-1", Error: &Error{Code: ErrCodeNotConfirmed,
			Message: "not confirmed: Asterisk answered Success but 1 QueueMemberPause (Paused: 1) did not follow within 2s"}}},
		{3, "response-recording-file", Response{ID: "req-2", Result: args(RecordingFile{RecordingID: "rec-20261206-0123456789abcdef",
			Size: 44, Offset: 8, Length: 4, ModTime: at, ContentType: "audio/wav"})}},
		{3, "events-queue-recording", EventBatch{Events: []Event{
			{Seq: 7, Type: EventQueueCallerLeft, Time: at, CallID: "1796529714.66", LinkedID: "1796529714.66", From: "+375296254070",
				Channel: "Local/inbound@queues-00000021;2", AnsweredBy: "102", Reason: LeftAnswered, Queue: "inbound", Position: 1,
				HoldTimeS: &hold, Member: "Local/102@from-queue/n", MemberName: "Operator 102"},
			{Seq: 8, Type: EventQueueMemberPaused, Time: at, Reason: "lunch", Queue: "inbound", Member: "Local/101@from-queue/n",
				MemberName: "Operator 101", Extension: "101"},
			{Seq: 9, Type: EventRecordingStopped, Time: at, CallID: "sb-1796540931-0b4234e84a165d84", Reason: "hangup",
				RecordingID: "rec-20261206-0123456789abcdef", File: "switchboard/20261206/rec-20261206-0123456789abcdef.wav"},
		}}},
	}
}

func TestGoldenQueueFrames(t *testing.T) {
	for _, g := range queueGoldenFrames(t) {
		t.Run(g.path(), func(t *testing.T) { checkGolden(t, g) })
	}
}

// A body stream as the agent writes it: kind 4, the Response frame, the
// bytes in chunks, the empty chunk.
func TestGoldenBodyStream(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteKind(&buf, StreamBody); err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(RecordingFile{RecordingID: "rec-20261206-0123456789abcdef", Size: 44, Offset: 8, Length: 4, ContentType: "audio/wav"})
	if err := WriteFrame(&buf, Response{ID: "req-2", Result: res}); err != nil {
		t.Fatal(err)
	}
	bw := NewBodyWriter(&buf)
	if _, err := bw.Write([]byte("WAVE")); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "v3", "body-stream.bytes")
	want := goldenBytes(t, path, buf.Bytes(), 3)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("the body stream changed:\ngot:  %q\nwant: %q", buf.Bytes(), want)
	}
}
