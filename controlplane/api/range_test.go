package api

import (
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want protocol.RecordingFetchArgs
		set  bool
	}{
		{"", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=8-11", protocol.RecordingFetchArgs{RecordingID: "r", Offset: 8, Length: 4}, true},
		{"bytes=8-", protocol.RecordingFetchArgs{RecordingID: "r", Offset: 8}, true},
		{"bytes=-4", protocol.RecordingFetchArgs{RecordingID: "r", Suffix: 4}, true},
		{" bytes=0-0 ", protocol.RecordingFetchArgs{RecordingID: "r", Length: 1}, true},
		// Ignored: the whole file is sent (RFC 9110 allows it).
		{"bytes=0-1,4-5", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"items=0-1", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=5-1", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=-", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=a-b", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=-1-2", protocol.RecordingFetchArgs{RecordingID: "r"}, false},
		{"bytes=0-9223372036854775807", protocol.RecordingFetchArgs{RecordingID: "r"}, true}, // to the end, no overflow
	} {
		r := parseRange(tc.h)
		if got := r.args("r"); got != tc.want || r.set != tc.set {
			t.Errorf("%q: %+v set %v, want %+v set %v", tc.h, got, r.set, tc.want, tc.set)
		}
	}
	if r := parseRange("bytes=-0"); !r.unsatisfied {
		t.Errorf("bytes=-0 selects nothing: %+v", r)
	}
}

// FuzzParseRange: any header gives arguments the agent accepts (nothing
// negative, a suffix alone) or no range at all.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-3", "bytes=-4", "bytes=10-", "bytes=1-2,3-4", "bytes=9223372036854775807-", "bytes=0-9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := parseRange(h)
		a := r.args("r")
		if a.Offset < 0 || a.Length < 0 || a.Suffix < 0 {
			t.Fatalf("%q: negative %+v", h, a)
		}
		if a.Suffix > 0 && (a.Offset != 0 || a.Length != 0) {
			t.Fatalf("%q: suffix with offset or length %+v", h, a)
		}
		if !r.set && a != (protocol.RecordingFetchArgs{RecordingID: "r"}) {
			t.Fatalf("%q: arguments without a range %+v", h, a)
		}
	})
}
