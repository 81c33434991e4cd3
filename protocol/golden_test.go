package protocol

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the current version's golden files in testdata/")

// golden is one message as peers of one protocol version put it on the
// wire, kept in testdata/v<version>/<name>.frame.
type golden struct {
	version int
	name    string
	msg     any
}

// goldenFrames holds the hello and welcome of every supported version.
// Frames of versions older than Version are frozen: -update never rewrites
// them, because the peers that sent those bytes are still in the field.
func goldenFrames() []golden {
	welcome := Welcome{SessionID: "ses_0123456789abcdef", HeartbeatSeconds: 15, LastAckedSeq: 42}
	welcome2 := welcome
	welcome2.Protocol, welcome2.ControlPlaneVersion = 2, "0.2.0"
	welcome3 := welcome
	welcome3.Protocol, welcome3.ControlPlaneVersion = 3, "0.3.0"
	return []golden{
		{1, "hello", Hello{Protocol: 1, AgentVersion: "0.1.0", Hostname: "pbx-0367", AsteriskVersion: "18.20.0",
			AMI: AMIUp, Context: "inoffice", Capabilities: []string{OpOriginate, OpHangup, OpMonitor}}},
		{1, "welcome", welcome},
		{2, "hello", Hello{Protocol: 2, AgentVersion: "0.2.0", Hostname: "pbx-0367", AsteriskVersion: "22.1.0",
			AMI: AMIUp, Context: "inoffice"}},
		{2, "welcome", welcome2},
		{3, "hello", Hello{Protocol: 3, AgentVersion: "0.3.0", Hostname: "pbx-0367", AsteriskVersion: "22.10.1",
			AMI: AMIUp, Context: "inoffice", Capabilities: []string{CapEventRefusal}}},
		{3, "welcome", welcome3},
	}
}

func (g golden) path() string {
	return filepath.Join("testdata", fmt.Sprintf("v%d", g.version), g.name+".frame")
}

func TestGoldenFrames(t *testing.T) {
	for _, g := range goldenFrames() {
		t.Run(g.path(), func(t *testing.T) { checkGolden(t, g) })
	}
}

// checkGolden encodes g.msg and compares the bytes with g's golden file
// (written first under -update when g is of the current version), then
// decodes the file back to g.msg.
func checkGolden(t *testing.T, g golden) {
	t.Helper()
	if !Supported(g.version) {
		t.Fatalf("version %d is no longer supported: delete %s", g.version, g.path())
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, g.msg); err != nil {
		t.Fatal(err)
	}
	want := goldenBytes(t, g.path(), buf.Bytes(), g.version)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("a version %d %s encodes differently; messages are only ever added to, and a wire change needs a Version bump.\ngot:  %q\nwant: %q",
			g.version, g.name, buf.Bytes(), want)
	}
	// What that version's peers send decodes to the same message.
	got := reflect.New(reflect.TypeOf(g.msg))
	if err := ReadFrame(bytes.NewReader(want), got.Interface(), 0); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Elem().Interface(), g.msg) {
		t.Fatalf("decoded %+v, want %+v", got.Elem().Interface(), g.msg)
	}
}

// goldenBytes returns the golden file at path, first writing got there
// under -update when version is the current one.
func goldenBytes(t *testing.T, path string, got []byte, version int) []byte {
	t.Helper()
	if *update && version == Version {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create the current version's): %v", err)
	}
	return want
}

// TestGoldenFramesEverySupportedVersion makes a Version bump come with its
// frames, and dropping a version (MinVersion up) with their removal.
func TestGoldenFramesEverySupportedVersion(t *testing.T) {
	have := map[string]bool{}
	for _, g := range goldenFrames() {
		if !Supported(g.version) {
			t.Errorf("golden %s is for version %d, outside [%d, %d]", g.path(), g.version, MinVersion, Version)
		}
		have[g.path()] = true
	}
	for v := MinVersion; v <= Version; v++ {
		for _, name := range []string{"hello", "welcome"} {
			if p := (golden{version: v, name: name}).path(); !have[p] {
				t.Errorf("no golden %s for supported version %d", p, v)
			}
		}
	}
	dirs, err := filepath.Glob(filepath.Join("testdata", "v*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		var v int
		if _, err := fmt.Sscanf(filepath.Base(d), "v%d", &v); err == nil && !Supported(v) {
			t.Errorf("%s holds frames of version %d, which this build no longer speaks: delete it", d, v)
		}
	}
}

// testdata/hello.frame is the v1 hello as pinned before frames were kept
// per version. Other repositories' tests and captures refer to it; it must
// stay the v1 hello, byte for byte.
func TestLegacyHelloFrameIsV1(t *testing.T) {
	legacy, err := os.ReadFile(filepath.Join("testdata", "hello.frame"))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := os.ReadFile(golden{version: 1, name: "hello"}.path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(legacy, v1) {
		t.Fatalf("testdata/hello.frame differs from testdata/v1/hello.frame:\n%q\n%q", legacy, v1)
	}
}

func TestOpMinVersion(t *testing.T) {
	tests := []struct {
		op   string
		want int
	}{
		{OpOriginate, 1}, {OpHangup, 1}, {OpMonitor, 1}, {OpChannels, 1}, {OpStatus, 1}, {OpPing, 1},
		{"no_such_op", 0},
	}
	for _, tc := range tests {
		if got := OpMinVersion(tc.op); got != tc.want {
			t.Errorf("OpMinVersion(%q) = %d, want %d", tc.op, got, tc.want)
		}
	}
	// An op cannot need a version this build does not speak.
	for op, v := range opMinVersion {
		if v < 1 || v > Version {
			t.Errorf("op %q introduced in version %d, outside [1, %d]", op, v, Version)
		}
	}
}

func TestSupported(t *testing.T) {
	for v, want := range map[int]bool{MinVersion - 1: false, MinVersion: true, Version: true, Version + 1: false} {
		if got := Supported(v); got != want {
			t.Errorf("Supported(%d) = %v, want %v", v, got, want)
		}
	}
}
