package amitest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The captures of a real Asterisk 22.10.1 (see their README.md).
const transcriptDir = "../testdata/transcripts"

// step is one TCP write of a capture and what Asterisk sent back before
// the next write.
type step struct {
	title string   // the last "### === …" or "### …" comment before the write
	send  []byte   // exact bytes written
	recv  [][]byte // exact bytes of each message received after it
	// external[i] marks recv[i] as caused by the capture tool (a CLI call
	// set up or hung up between actions), not by the actions replayed.
	external []bool
	eof      bool // Asterisk closed the connection after this step
	// gap is the time from the previous write to this one in the capture.
	gap time.Duration
}

type transcript struct {
	name   string
	banner []byte
	steps  []step
}

// loadTranscript rebuilds the steps of a capture from NAME.txt (which
// tells where each write ends and how many messages followed it) and the
// exact bytes of NAME.sent.raw / NAME.recv.raw. It fails if the .txt and
// the .raw files disagree, so the replay always sends the captured bytes.
func loadTranscript(t testing.TB, name string) *transcript {
	t.Helper()
	txt := readFile(t, name+".txt")
	sentRaw := readFile(t, name+".sent.raw")
	recvRaw := readFile(t, name+".recv.raw")

	tr := &transcript{name: name}
	var cur *step
	var pendingSend []byte
	var title string
	var lastSent time.Duration
	external := false
	type recvMark struct {
		step     int // -1: banner
		external bool
		first    string
	}
	var marks []recvMark
	var msgLines []string
	for _, line := range strings.Split(strings.TrimSuffix(string(txt), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, ">>> "):
			pendingSend = append(pendingSend, unescapeSent(line[4:])...)
		case strings.HasPrefix(line, "### sent at"):
			at := sentAt(line)
			tr.steps = append(tr.steps, step{title: title, send: pendingSend, gap: at - lastSent})
			lastSent = at
			cur = &tr.steps[len(tr.steps)-1]
			pendingSend, external = nil, false
		case strings.HasPrefix(line, "### connection closed by peer"):
			cur.eof = true
		case strings.HasPrefix(line, "### === "), strings.HasPrefix(line, "### Ping"),
			strings.HasPrefix(line, "### Login"), strings.HasPrefix(line, "### Second"):
			title = strings.TrimPrefix(line, "### ")
		case strings.HasPrefix(line, "### channels now"), strings.HasPrefix(line, "### --- injection"),
			strings.HasPrefix(line, "### live call set up"), strings.HasPrefix(line, "### CLI"):
			external = true
		case strings.HasPrefix(line, "<<<"):
			v := strings.TrimPrefix(strings.TrimPrefix(line, "<<<"), " ")
			if cur == nil && strings.HasPrefix(v, "Asterisk Call Manager/") {
				continue // the banner: one line, no blank line after it
			}
			if v != "" {
				msgLines = append(msgLines, v)
				continue
			}
			if len(msgLines) > 0 {
				idx := len(tr.steps) - 1
				marks = append(marks, recvMark{step: idx, external: external, first: first(msgLines)})
			}
			msgLines = nil
		}
	}
	if !bytes.Equal(joinSends(tr.steps), sentRaw) {
		t.Fatalf("%s: the writes rebuilt from .txt differ from .sent.raw", name)
	}
	// The banner is the first line; then messages end with a blank line.
	i := bytes.Index(recvRaw, []byte("\r\n"))
	tr.banner = recvRaw[:i+2]
	msgs := splitMessages(recvRaw[i+2:])
	if len(msgs) != len(marks) {
		t.Fatalf("%s: .txt shows %d messages, .recv.raw holds %d", name, len(marks), len(msgs))
	}
	for k, mk := range marks {
		if got := firstLine(msgs[k]); got != mk.first {
			t.Fatalf("%s: message %d starts %q in .recv.raw but %q in .txt", name, k, got, mk.first)
		}
		st := &tr.steps[mk.step]
		st.recv = append(st.recv, msgs[k])
		st.external = append(st.external, mk.external)
	}
	return tr
}

// sentAt reads "### sent at t=502.458 ms (since connect)".
func sentAt(line string) time.Duration {
	var ms float64
	if _, err := fmt.Sscanf(line, "### sent at t=%f ms", &ms); err != nil {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(transcriptDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func first(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}

func firstLine(msg []byte) string {
	s, _, _ := strings.Cut(string(msg), "\r\n")
	return s
}

func joinSends(steps []step) []byte {
	var b []byte
	for _, s := range steps {
		b = append(b, s.send...)
	}
	return b
}

// unescapeSent turns one ">>> " line of a .txt back into the bytes sent:
// CRLF unless marked [LF-only] or [no-terminator]; \r, \t and \xNN inside
// are control bytes (the .txt header says so).
func unescapeSent(s string) []byte {
	term := "\r\n"
	switch {
	case strings.HasSuffix(s, " [LF-only]"):
		s, term = strings.TrimSuffix(s, " [LF-only]"), "\n"
	case strings.HasSuffix(s, " [no-terminator]"):
		s, term = strings.TrimSuffix(s, " [no-terminator]"), ""
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'r':
				b = append(b, '\r')
				i++
				continue
			case 't':
				b = append(b, '\t')
				i++
				continue
			case 'x':
				if i+3 < len(s) {
					if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
						b = append(b, byte(n))
						i += 3
						continue
					}
				}
			}
		}
		b = append(b, s[i])
	}
	return append(b, term...)
}

// splitMessages cuts Asterisk's output (always CRLF) into messages, each
// with its terminating blank line.
func splitMessages(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:i+4])
		b = b[i+4:]
	}
	return out
}

// normalizer rewrites what legitimately differs between two runs of the
// same session — on a real Asterisk as much as between Asterisk and the
// fake — so that what is left can be compared byte for byte:
//
//   - uniqueids/linkedids (epoch.seq): the epoch is the wall clock and the
//     sequence counts every channel since Asterisk started, so each
//     distinct one becomes UID<n> in order of first appearance;
//   - the 8-hex counter of Local channel names (-0000000a;1) counts calls
//     since start-up: each distinct one becomes H<n>;
//   - bridge ids are random UUIDs: BRIDGE<n>;
//   - clock readings (Ping Timestamp, EventTV, SessionTV, Cdr and CEL
//     times, EventTime, start-up date/time, EPOCH), uptimes, and durations
//     in seconds (Cdr Duration/BillableSeconds, Status Seconds): <T>;
//   - per-connection facts: SessionID (a pointer in Asterisk), the client
//     port in RemoteAddress and the server port in LocalAddress, and the
//     random MD5 Challenge;
//   - the "calls processed" counters, which count calls since start-up.
//
// Nothing else is touched: header names, their order, every other value,
// and CRLFs must match exactly.
type normalizer struct {
	uids, hexes, bridges map[string]string
}

func newNormalizer() *normalizer {
	return &normalizer{uids: map[string]string{}, hexes: map[string]string{}, bridges: map[string]string{}}
}

var (
	reUID     = regexp.MustCompile(`\b\d{9,11}\.\d+\b`)
	reHex     = regexp.MustCompile(`-([0-9a-f]{8});`)
	reUUID    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	rePort    = regexp.MustCompile(`^(IPV[46]/TCP/[^/]+)/\d+$`)
	reCounter = regexp.MustCompile(`^\d+ (calls? processed)$`)
)

var clockKeys = map[string]bool{
	"Timestamp": true, "EventTV": true, "SessionTV": true, "StartTime": true, "AnswerTime": true,
	"EndTime": true, "EventTime": true, "Uptime": true, "LastReload": true, "CoreStartupDate": true,
	"CoreStartupTime": true, "CoreReloadDate": true, "CoreReloadTime": true, "Duration": true,
	"BillableSeconds": true, "Seconds": true, "CoreProcessedCalls": true,
}

// idKeys hold per-connection identifiers: Asterisk's session pointer and
// the random MD5 challenge.
var idKeys = map[string]bool{"SessionID": true, "Challenge": true}

func (n *normalizer) token(m map[string]string, prefix, v string) string {
	if r, ok := m[v]; ok {
		return r
	}
	r := fmt.Sprintf("%s%d", prefix, len(m)+1)
	m[v] = r
	return r
}

// message normalises one message (CRLF lines, blank line at the end).
func (n *normalizer) message(msg []byte) string {
	lines := strings.Split(strings.TrimSuffix(string(msg), "\r\n\r\n"), "\r\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		switch {
		case clockKeys[k] && v != "":
			v = "<T>"
		case idKeys[k]:
			v = "<ID>"
		case k == "LocalAddress" || k == "RemoteAddress":
			v = rePort.ReplaceAllString(v, "$1/<PORT>")
		case k == "Output" && reCounter.MatchString(v):
			v = reCounter.ReplaceAllString(v, "<N> $1")
		case k == "Value" && len(v) == 10 && isDigits(v):
			v = "<T>" // Getvar EPOCH
		}
		v = reUUID.ReplaceAllStringFunc(v, func(s string) string { return n.token(n.bridges, "BRIDGE", s) })
		v = reUID.ReplaceAllStringFunc(v, func(s string) string { return n.token(n.uids, "UID", s) })
		v = reHex.ReplaceAllStringFunc(v, func(s string) string { return "-" + n.token(n.hexes, "H", s[1:9]) + ";" })
		lines[i] = k + ": " + v
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}
