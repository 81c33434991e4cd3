package amitest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary bytes to a logged-in session. Whatever they
// are, the server must not crash, must keep its state consistent, and
// must still answer a Ping sent after them — unless the bytes logged off.
func FuzzSession(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(transcriptDir, "*.sent.raw"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Action: Originate\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/busy@inoffice\r\n\r\n"))
	f.Add([]byte("Action: Hangup\r\nChannel: /.*/\r\n\r\n\n\n\r\r\nAction:\r\n"))

	srv := NewServer(f, WithAuthFailDelay(time.Millisecond), WithChanSpyDelay(time.Millisecond), func(c *Config) {
		c.OriginateTimeout = 20 * time.Millisecond
	})
	// Nothing may ring for long, so a synchronous Originate in the input
	// cannot hold the session past the test's deadline.
	srv.SetOutcome("noanswer", Busy)

	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		login := "Action: Login\r\nUsername: switchboard\r\nSecret: switchboard-secret\r\nEvents: off\r\n\r\n"
		sentinel := "\r\n\r\nAction: Ping\r\nActionID: fuzz-sentinel\r\n\r\n"
		// Timeouts in the input are capped the same way.
		in = bytes.ReplaceAll(in, []byte("Timeout:"), []byte("X-Timeout:"))
		// PlayDTMF holds the session for its Duration, like Asterisk.
		in = bytes.ReplaceAll(in, []byte("Duration:"), []byte("X-Duration:"))
		if _, err := conn.Write([]byte(login)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(append(append([]byte{}, in...), sentinel...)); err != nil {
			if strings.Contains(strings.ToLower(string(in)), "logoff") {
				return
			}
			t.Fatal(err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if strings.Contains(strings.ToLower(string(in)), "logoff") {
					return // the input logged off: the server hung up, as it must
				}
				t.Fatalf("no answer to the Ping after the input: %v", err)
			}
			if line == "ActionID: fuzz-sentinel\r\n" {
				break
			}
		}
		for _, ch := range srv.Channels() {
			_ = srv.Hangup(ch.Uniqueid, 16)
		}
	})
}
