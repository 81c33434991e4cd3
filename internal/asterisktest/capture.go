package asterisktest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Step is one write of a capture: the bytes sent (CRLF lines), a title
// that names it, and how long to keep reading what Asterisk sends after
// it (an Originate's events take until its call is answered or failed).
type Step struct {
	Title string
	Send  string
	Wait  time.Duration
}

// Capture records an AMI session with the real Asterisk at addr in the
// format of the shared captures (../shared/ami-transcripts: NAME.txt,
// NAME.sent.raw, NAME.recv.raw), which protocol/ami/amitest's golden tests
// replay against the fake. It logs in as User first, then runs steps.
func Capture(ctx context.Context, addr, dir, name string, steps []Step) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	rec := &recorder{c: c, br: bufio.NewReader(c), start: time.Now(), last: time.Now()}
	fmt.Fprintf(&rec.txt, "### transcript %s  (started %s)\n", name, rec.start.UTC().Format("2006-01-02 15:04:05"))
	rec.txt.WriteString("### all wire lines end with CRLF unless marked [LF-only]/[no-terminator]; a \\r / \\xNN inside a line is a bare control byte (see .raw files for exact bytes)\n")
	fmt.Fprintf(&rec.txt, "### TCP connected to %s; recorded by internal/asterisktest.Capture\n", addr)
	if err := rec.banner(); err != nil {
		return err
	}
	login := Step{Send: "Action: Login\r\nActionID: login-1\r\nUsername: " + User + "\r\nSecret: " + Secret + "\r\n\r\n", Wait: 500 * time.Millisecond}
	for _, st := range append([]Step{login}, steps...) {
		if err := rec.step(st); err != nil {
			return fmt.Errorf("%s: %w", st.Title, err)
		}
	}
	for ext, b := range map[string][]byte{".txt": rec.txt.Bytes(), ".sent.raw": rec.sent.Bytes(), ".recv.raw": rec.recv.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name+ext), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type recorder struct {
	c               net.Conn
	br              *bufio.Reader
	txt, sent, recv bytes.Buffer
	start, last     time.Time
}

func (r *recorder) banner() error {
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("banner: %w", err)
	}
	r.recv.WriteString(line)
	r.note()
	fmt.Fprintf(&r.txt, "<<< %s\n", strings.TrimRight(line, "\r\n"))
	return nil
}

func (r *recorder) note() {
	fmt.Fprintf(&r.txt, "### +%.3f ms after last send\n", float64(time.Since(r.last).Microseconds())/1000)
}

func (r *recorder) step(st Step) error {
	if st.Title != "" {
		fmt.Fprintf(&r.txt, "### === %s\n", st.Title)
	}
	for _, l := range strings.SplitAfter(st.Send, "\r\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\r\n") || strings.ContainsAny(strings.TrimSuffix(l, "\r\n"), "\r\n\\") {
			return fmt.Errorf("line %q: only plain CRLF lines can be recorded", l)
		}
		fmt.Fprintf(&r.txt, ">>> %s\n", strings.TrimSuffix(l, "\r\n"))
	}
	r.last = time.Now()
	if _, err := r.c.Write([]byte(st.Send)); err != nil {
		return err
	}
	r.sent.WriteString(st.Send)
	fmt.Fprintf(&r.txt, "### sent at t=%.3f ms (since connect)\n", float64(r.last.Sub(r.start).Microseconds())/1000)
	_ = r.c.SetReadDeadline(r.last.Add(st.Wait))
	for {
		msg, err := r.message()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && len(msg) == 0 {
				return nil
			}
			return err
		}
		r.recv.Write(msg)
		if string(msg) != "\r\n" {
			// A lone CRLF is no message: the one too many after Park's
			// answer (README §21), shown as one more "<<< " line.
			r.note()
		}
		for _, l := range strings.SplitAfter(string(msg), "\n") {
			if l == "" {
				continue
			}
			body, mark := strings.TrimSuffix(l, "\n"), ""
			if strings.HasSuffix(body, "\r") {
				body = strings.TrimSuffix(body, "\r")
			} else {
				mark = " [LF-only]" // Park's Message line
			}
			if strings.Contains(body, "\r") {
				return fmt.Errorf("received a line with a bare CR: %q", l)
			}
			fmt.Fprintf(&r.txt, "<<< %s%s\n", body, mark)
		}
	}
}

// message reads one message through its blank line. A timeout before its
// first byte returns no message.
func (r *recorder) message() ([]byte, error) {
	var msg []byte
	for {
		line, err := r.br.ReadBytes('\n')
		msg = append(msg, line...)
		if err != nil {
			if len(msg) > 0 && !bytes.Equal(msg, line) {
				return msg, fmt.Errorf("message cut short: %w", err)
			}
			return nil, err
		}
		if len(line) == 2 && line[0] == '\r' {
			return msg, nil
		}
	}
}
