package ami

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// transcriptDir holds the captures of a real Asterisk, copied from
// shared/ami-transcripts so the repository tests stand alone.
const transcriptDir = "testdata/transcripts"

func readAll(t testing.TB, r *Reader) []*Message {
	t.Helper()
	var out []*Message
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("message %d: %v", len(out), err)
		}
		out = append(out, m)
	}
}

// Every byte Asterisk sent in the captures parses, and every message is
// either a response or an event.
func TestReaderParsesEveryCapture(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.recv.raw"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures found in %s (err %v)", transcriptDir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader(bytes.NewReader(raw))
			r.SkipBlankLines = true // as the client reads: Park's extra CRLF (README §21)
			ver, err := r.ReadBanner()
			if err != nil || ver != "11.0.0" {
				t.Fatalf("banner: %q %v", ver, err)
			}
			msgs := readAll(t, r)
			if len(msgs) == 0 {
				t.Fatal("no messages")
			}
			for i, m := range msgs {
				if !m.IsEvent() && !m.IsResponse() {
					t.Errorf("message %d is neither event nor response: %q", i, m.String())
				}
			}
			// Re-serialising what we parsed gives back Asterisk's bytes,
			// except for values with a bare CR (which we refuse to send).
			var again []byte
			again = append(again, "Asterisk Call Manager/11.0.0\r\n"...)
			for _, m := range msgs {
				again = append(again, m.String()...)
			}
			// Park's answers (a bare LF, then one CRLF too many) are the
			// other exception: TestParkFraming covers them.
			if !bytes.Contains(raw, []byte("\r\r")) && !bytes.Equal(again, raw) && !strings.Contains(string(raw), "\nResponse: Error\r\nMessage: Missing") &&
				!bytes.Contains(raw, []byte("Message: Park successful\n\r\n\r\n")) {
				t.Errorf("round trip differs from capture")
			}
		})
	}
}

func TestReaderRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Header
		err  error
	}{
		{"crlf", "Action: Ping\r\nActionID: 1\r\n\r\n", []Header{{"Action", "Ping"}, {"ActionID", "1"}}, nil},
		{"bare lf", "Action: Ping\nActionID: 1\n\n", []Header{{"Action", "Ping"}, {"ActionID", "1"}}, nil},
		{"no space after colon", "ActionID:x\r\n\r\n", []Header{{"ActionID", "x"}}, nil},
		{"leading blanks trimmed, trailing kept", "Action:   Ping  \r\nActionID:\t  s-9  \r\n\r\n", []Header{{"Action", "Ping  "}, {"ActionID", "s-9  "}}, nil},
		{"line without colon ignored", "Action: Ping\r\nthis has none\r\n\r\n", []Header{{"Action", "Ping"}}, nil},
		{"bare CR stays in value", "Value: a\rb\r\n\r\n", []Header{{"Value", "a\rb"}}, nil},
		{"value with colons", "Data: Local/1@x,bq:y\r\n\r\n", []Header{{"Data", "Local/1@x,bq:y"}}, nil},
		{"empty value", "AccountCode: \r\n\r\n", []Header{{"AccountCode", ""}}, nil},
		{"stray blank line", "\r\n", []Header{}, nil},
	}
	// A client's Reader skips blank lines between messages: Park's answer
	// ends "Message: Park successful\n" then CRLF, then one CRLF too many.
	skip := []struct {
		name string
		in   string
		want []string // each message, as Message.String() without its blank line
	}{
		{"park's extra CRLF", "Response: Success\r\nMessage: Park successful\n\r\n\r\nEvent: VarSet\r\n\r\n",
			[]string{"Response: Success\r\nMessage: Park successful\r\n", "Event: VarSet\r\n"}},
		{"park action failed", "Response: Error\r\nMessage: Park action failed\n\r\n\r\nResponse: Success\r\n\r\n",
			[]string{"Response: Error\r\nMessage: Park action failed\r\n", "Response: Success\r\n"}},
		{"leading blank lines", "\r\n\n\r\nEvent: VarSet\r\n\r\n", []string{"Event: VarSet\r\n"}},
	}
	for _, tc := range skip {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in))
			r.SkipBlankLines = true
			var got []string
			for _, m := range readAll(t, r) {
				got = append(got, strings.TrimSuffix(m.String(), "\r\n"))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewReader(strings.NewReader(tc.in)).ReadMessage()
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if len(m.Headers) != len(tc.want) {
				t.Fatalf("headers = %q, want %q", m.Headers, tc.want)
			}
			for i := range tc.want {
				if m.Headers[i] != tc.want[i] {
					t.Errorf("header %d = %q, want %q", i, m.Headers[i], tc.want[i])
				}
			}
		})
	}
}

func TestDuplicateHeadersFirstWins(t *testing.T) {
	m, err := NewReader(strings.NewReader("ActionID: first\r\nactionid: second\r\nOutput: a\r\nOutput: b\r\n\r\n")).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ActionID(); got != "first" {
		t.Errorf("ActionID = %q, want first", got)
	}
	if got := m.Values("output"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Values(Output) = %q", got)
	}
}

func TestReaderLineTooLongKeepsStreamUsable(t *testing.T) {
	in := "Action: Ping\r\nActionID: long-19\r\nX-Long: " + strings.Repeat("A", 2000) + "\r\n\r\nAction: Ping\r\nActionID: after\r\n\r\n"
	r := NewReader(strings.NewReader(in))
	r.MaxLineBytes = MaxLineBytes
	m, err := r.ReadMessage()
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if m.ActionID() != "long-19" || m.Get("X-Long") != "" {
		t.Errorf("kept headers = %q", m.Headers)
	}
	m, err = r.ReadMessage()
	if err != nil || m.ActionID() != "after" {
		t.Fatalf("next message = %v, %v", m, err)
	}
}

func TestReaderMessageTooLarge(t *testing.T) {
	in := "Event: X\r\n" + strings.Repeat("Output: 0123456789\r\n", 100) + "\r\nEvent: Y\r\n\r\n"
	r := NewReader(strings.NewReader(in))
	r.MaxMessageBytes = 200
	if _, err := r.ReadMessage(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("err = %v, want ErrMessageTooLarge", err)
	}
	m, err := r.ReadMessage()
	if err != nil || m.Event() != "Y" {
		t.Fatalf("next = %v, %v", m, err)
	}
}

func TestReaderTruncated(t *testing.T) {
	r := NewReader(strings.NewReader("Response: Success\r\nActionID: 1\r\n"))
	if _, err := r.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want ErrUnexpectedEOF", err)
	}
}

func TestBanner(t *testing.T) {
	if _, err := NewReader(strings.NewReader("SSH-2.0-OpenSSH\r\n")).ReadBanner(); !errors.Is(err, ErrBadBanner) {
		t.Fatalf("err = %v, want ErrBadBanner", err)
	}
}

func TestAppendWireRefusesInjection(t *testing.T) {
	tests := []struct {
		name   string
		m      *Message
		target error
	}{
		{"crlf crlf smuggles an action", NewAction("Setvar", "Value", "x\r\n\r\nAction: Hangup\r\nChannel: SIP/1"), ErrInjection},
		{"bare lf ends a line", NewAction("Setvar", "Value", "a\nAction: Hangup"), ErrInjection},
		{"bare cr", NewAction("Setvar", "Value", "a\rb"), ErrInjection},
		{"nul", NewAction("Setvar", "Value", "a\x00b"), ErrInjection},
		{"crlf in key", NewAction("Ping", "X\r\nAction", "Hangup"), ErrInjection},
		{"colon in key", NewAction("Ping", "Action: Hangup\r\nX", "y"), ErrInjection},
		{"empty key", NewAction("Ping", "", "y"), ErrInjection},
		{"leading blank in value", NewAction("Ping", "ActionID", " x"), ErrInjection},
		{"line over 1024 bytes", NewAction("Ping", "X-Long", strings.Repeat("A", 1020)), ErrLineTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendWire([]byte("keep"), tc.m)
			if !errors.Is(err, tc.target) {
				t.Fatalf("err = %v, want %v", err, tc.target)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q on refusal", out)
			}
		})
	}
}

func TestAppendWireExactBytes(t *testing.T) {
	m := NewAction("Originate", "ActionID", "orig-150-1", "Channel", "Local/150@inoffice", "Application", "Dial",
		"Data", "Local/+375296254070@inoffice", "CallerID", `"Desk 150" <150>`, "Timeout", "30000", "Async", "true")
	out, err := AppendWire(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "Action: Originate\r\nActionID: orig-150-1\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\n" +
		"Data: Local/+375296254070@inoffice\r\nCallerID: \"Desk 150\" <150>\r\nTimeout: 30000\r\nAsync: true\r\n\r\n"
	if string(out) != want {
		t.Errorf("got\n%q\nwant\n%q", out, want)
	}
	// The capture of the same action (transcript 03) has the same bytes
	// after the login action.
	raw, err := os.ReadFile(filepath.Join(transcriptDir, "03-originate-dial-bridge.sent.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, out) {
		t.Errorf("serialised Originate is not the captured bytes")
	}
	// A line of exactly 1024 bytes with CRLF is accepted.
	if _, err := AppendWire(nil, NewAction("Ping", "X", strings.Repeat("A", 1024-len("X: ")-2))); err != nil {
		t.Errorf("1024-byte line refused: %v", err)
	}
}

func FuzzReadMessage(f *testing.F) {
	for _, name := range []string{"02-ping.recv.raw", "05-coreshowchannels.recv.raw", "09-errors-injection.sent.raw"} {
		if raw, err := os.ReadFile(filepath.Join(transcriptDir, name)); err == nil {
			f.Add(raw[:min(len(raw), 4096)])
		}
	}
	f.Add([]byte("Action: Ping\nActionID:x\n\n\r\n\r\nVal: a\rb\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.MaxLineBytes = MaxLineBytes
		r.MaxMessageBytes = 4096
		for i := 0; i < 1000; i++ {
			m, err := r.ReadMessage()
			if err != nil && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, ErrMessageTooLarge) {
				return
			}
			// Whatever we parsed, if we can serialise it, parses back the same.
			wire, werr := AppendWire(nil, m)
			if werr != nil {
				continue
			}
			back, err := NewReader(bytes.NewReader(wire)).ReadMessage()
			if err != nil {
				t.Fatalf("re-read of %q: %v", wire, err)
			}
			if len(back.Headers) != len(m.Headers) {
				t.Fatalf("round trip: %q != %q", back.Headers, m.Headers)
			}
			for j := range back.Headers {
				if back.Headers[j] != m.Headers[j] {
					t.Fatalf("round trip header %d: %q != %q", j, back.Headers[j], m.Headers[j])
				}
			}
		}
	})
}

func BenchmarkReadMessage(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(transcriptDir, "03-originate-dial-bridge.recv.raw"))
	if err != nil {
		b.Fatal(err)
	}
	body := raw[bytes.IndexByte(raw, '\n')+1:]
	n := len(readAll(b, NewReader(bytes.NewReader(body))))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(body))
		for j := 0; j < n; j++ {
			if _, err := r.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
}
