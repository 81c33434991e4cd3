package ami

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestParkFraming is the golden test of Park's broken framing (README
// §21): Asterisk ends the Message line of "Park successful" and "Park
// action failed" with a bare LF and sends one CRLF too many after the
// message. Each Park answer of captures 16b and 16c is shown as the bytes
// on the wire, then as the client's Reader parses it, with the message
// that follows it: the extra CRLF must not become a message of its own,
// and nothing after it may be lost or merged.
func TestParkFraming(t *testing.T) {
	var b strings.Builder
	for _, name := range []string{"16b-park", "16c-park-failures"} {
		raw, err := os.ReadFile(filepath.Join(transcriptDir, name+".recv.raw"))
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(bytes.NewReader(raw))
		r.SkipBlankLines = true
		if _, err := r.ReadBanner(); err != nil {
			t.Fatal(err)
		}
		msgs := readAll(t, r)
		wire := parkAnswersOnWire(raw)
		found := 0
		for i, m := range msgs {
			msg := m.Get("Message")
			if msg != "Park successful" && msg != "Park action failed" {
				continue
			}
			if found >= len(wire) {
				t.Fatalf("%s: more Park answers parsed than found on the wire", name)
			}
			fmt.Fprintf(&b, "=== %s %s\nwire:   %q\nparsed: %q\n", name, m.ActionID(), wire[found], m.String())
			if i+1 < len(msgs) {
				next := msgs[i+1]
				first := next.Headers[0]
				fmt.Fprintf(&b, "next:   %s: %s (%d headers)\n", first.Key, first.Value, len(next.Headers))
			}
			found++
		}
		if found != len(wire) || found == 0 {
			t.Fatalf("%s: %d Park answers parsed, %d on the wire", name, found, len(wire))
		}
	}
	checkGolden(t, "park-framing.golden", b.String())
}

// parkAnswersOnWire cuts every Park answer out of a capture's bytes, from
// its Response line through the extra CRLF.
func parkAnswersOnWire(raw []byte) []string {
	var out []string
	for rest := raw; ; {
		i := bytes.Index(rest, []byte("\n\r\n\r\n"))
		if i < 0 {
			return out
		}
		end := i + 5
		if line := rest[bytes.LastIndexByte(rest[:i], '\n')+1 : i]; bytes.HasPrefix(line, []byte("Message: Park ")) {
			start := 0
			if j := bytes.LastIndex(rest[:i], []byte("\r\n\r\n")); j >= 0 {
				start = j + 4
			}
			out = append(out, string(rest[start:end]))
		}
		rest = rest[end:]
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if string(want) != got {
		t.Fatalf("%s differs (run go test -run %s -update and review the diff):\n--- want\n%s\n--- got\n%s", path, t.Name(), want, got)
	}
}

// TestReplayPark drives the client through capture 16b: the Park answer
// comes back whole, the ParkedCall event it causes reaches subscribers,
// and the actions after it (ParkedCalls, an event list) still work.
func TestReplayPark(t *testing.T) {
	srv, received := replayServer(t, loadCapture(t, "16b-park"))
	r := startRun(t, testConfig(srv.Addr(), nil))
	ctx := ctxT(t)
	lots, err := r.List(ctx, NewAction("Parkinglots"))
	if err != nil || len(lots.Items) != 2 || lots.Items[1].Get("Name") != "operators" || lots.Complete.Event() != "ParkinglotsComplete" {
		t.Fatalf("Parkinglots: %v %+v", err, lots)
	}
	m, err := r.Action(ctx, NewAction("Park", "Channel", "Local/+375296254070@inoffice-00000034;1", "TimeoutChannel", "Local/150@inoffice-00000033;1"))
	if err != nil || m.Get("Message") != "Park successful" || len(m.Headers) != 3 {
		t.Fatalf("Park: %v %q", err, m)
	}
	if p := r.next(t, "ParkedCall"); p.Get("ParkingSpace") != "701" || p.Get("Parkinglot") != "default" {
		t.Errorf("ParkedCall %q", p.String())
	}
	for i, lot := range []string{"", "default", "operators"} {
		a := NewAction("ParkedCalls")
		if lot != "" {
			a.Add("ParkingLot", lot)
		}
		res, err := r.List(ctx, a)
		want := 1
		if lot == "operators" {
			want = 0
		}
		if err != nil || len(res.Items) != want || res.Complete.Event() != "ParkedCallsComplete" {
			t.Fatalf("ParkedCalls %d (%q): %v %+v", i, lot, err, res)
		}
	}
	if n := len(received()); n != 6 { // Login, Parkinglots, Park, ParkedCalls x3
		t.Errorf("server received %d actions", n)
	}
}
