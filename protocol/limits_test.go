package protocol

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// The fields added for the agent's limits are optional and additive: an
// event without them encodes as before, and a peer that does not know
// them decodes the rest. Golden frames pin their bytes.
func TestLimitFramesGolden(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		file string
		msg  any
	}{
		{"events-truncated.frame", EventBatch{Events: []Event{
			{Seq: 7, Type: EventCallStarted, Time: at, CallID: "1716212345.42", From: "777", Truncated: []string{"from"}},
			{Seq: 8, Type: EventGap, Time: at, CallID: "1716212345.42", Lost: 1, Dropped: EventCallAnswered,
				Reason: "event of 1412345 bytes is over the 16384-byte limit of one event"},
		}}},
		{"ack-refused.frame", Ack{Seq: 6, Refused: &Refusal{FrameBytes: 1412412, MaxBytes: DefaultMaxFrameBytes}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteFrame(&buf, tc.msg); err != nil {
				t.Fatal(err)
			}
			// Not of one version: they are what every version sends.
			want := goldenBytes(t, filepath.Join("testdata", tc.file), buf.Bytes(), Version)
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("frame bytes changed.\ngot:  %q\nwant: %q", buf.Bytes(), want)
			}
		})
	}
	// Without the new fields, an event and an ack encode exactly as before.
	for _, tc := range []struct {
		msg  any
		want string
	}{
		{Event{Seq: 1, Type: EventCallEnded, Time: at}, `{"seq":1,"type":"call.ended","time":"2026-11-24T09:30:00Z"}`},
		{Ack{Seq: 9}, `{"seq":9}`},
	} {
		b, err := json.Marshal(tc.msg)
		if err != nil || string(b) != tc.want {
			t.Fatalf("encoded %s, %v; want %s", b, err, tc.want)
		}
	}
}
