package ami

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of the wire format.
const (
	// MaxLineBytes is Asterisk's input buffer: a line sent to Asterisk,
	// including its CRLF, must fit in 1024 bytes or Asterisk answers
	// "Failed to parse message: line too long" (transcript 09s).
	MaxLineBytes = 1024
	// DefaultMaxMessageBytes bounds one received message. Asterisk's own
	// output (Command output, ListCommands) stays far below it.
	DefaultMaxMessageBytes = 1 << 20
)

// Errors of the codec.
var (
	// ErrInjection is wrapped by every refusal to serialise a header whose
	// key or value could change the framing (CR, LF, NUL, colon in a key).
	ErrInjection = errors.New("ami: header would inject into the AMI stream")
	// ErrLineTooLong is returned for a line over MaxLineBytes.
	ErrLineTooLong = errors.New("ami: line too long")
	// ErrMessageTooLarge is returned when a received message exceeds the
	// reader's MaxMessageBytes; the rest of that message is discarded.
	ErrMessageTooLarge = errors.New("ami: message too large")
	// ErrBadBanner is returned when the server does not greet like Asterisk.
	ErrBadBanner = errors.New("ami: unexpected banner")
)

// InjectionError says which header was refused and why.
type InjectionError struct {
	Key    string
	Reason string
}

func (e *InjectionError) Error() string {
	return fmt.Sprintf("ami: refusing header %q: %s", e.Key, e.Reason)
}

func (e *InjectionError) Unwrap() error { return ErrInjection }

// AppendWire validates m and appends its wire form (CRLF line ends, a
// blank line at the end) to dst. Nothing is appended when validation
// fails: a value carrying "\r\n\r\n" would otherwise smuggle a second,
// complete action that Asterisk runs (transcript 09n).
func AppendWire(dst []byte, m *Message) ([]byte, error) {
	if len(m.Headers) == 0 {
		return dst, &InjectionError{Reason: "empty message"}
	}
	for _, h := range m.Headers {
		if err := checkHeader(h); err != nil {
			return dst, err
		}
	}
	for _, h := range m.Headers {
		dst = append(dst, h.Key...)
		dst = append(dst, ':', ' ')
		dst = append(dst, h.Value...)
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '\r', '\n'), nil
}

func checkHeader(h Header) error {
	if h.Key == "" {
		return &InjectionError{Key: h.Key, Reason: "empty key"}
	}
	if i := strings.IndexAny(h.Key, "\r\n\x00: \t"); i >= 0 {
		return &InjectionError{Key: h.Key, Reason: fmt.Sprintf("key contains %q", h.Key[i])}
	}
	if i := strings.IndexAny(h.Value, "\r\n\x00"); i >= 0 {
		return &InjectionError{Key: h.Key, Reason: fmt.Sprintf("value contains %q at byte %d", h.Value[i], i)}
	}
	// Asterisk strips leading blanks of a value, so a value starting with
	// one would not round-trip: refuse rather than silently change it.
	if h.Value != "" && (h.Value[0] == ' ' || h.Value[0] == '\t') {
		return &InjectionError{Key: h.Key, Reason: "value starts with a blank, which Asterisk would strip"}
	}
	if n := len(h.Key) + 2 + len(h.Value) + 2; n > MaxLineBytes {
		return fmt.Errorf("header %q is %d bytes with CRLF, over Asterisk's %d: %w", h.Key, n, MaxLineBytes, ErrLineTooLong)
	}
	return nil
}

// Reader reads AMI messages from a stream. It accepts CRLF and bare LF line
// ends; a bare CR inside a line stays in the value. Header lines without a
// colon are ignored, leading blanks of a value are trimmed and trailing
// ones kept: exactly what Asterisk does (transcript 09, README §15).
type Reader struct {
	br *bufio.Reader
	// MaxLineBytes, when > 0, flags any longer line (terminator included)
	// with ErrLineTooLong. The fake server sets it to MaxLineBytes; a
	// client leaves it 0 because Asterisk's own lines can be longer.
	MaxLineBytes int
	// MaxMessageBytes bounds one message (DefaultMaxMessageBytes if 0).
	MaxMessageBytes int
	// SkipBlankLines makes ReadMessage pass over blank lines between
	// messages instead of returning each as a message with no headers. A
	// client sets it: Asterisk never sends an empty message, but its Park
	// answer ends its Message line with a bare LF and adds one CRLF too
	// many ("Message: Park successful\n\r\n\r\n", capture 16b, README
	// §21), which would otherwise read as an empty message after it. A
	// server leaves it off: a client's stray blank line is answered with
	// "Missing action in request".
	SkipBlankLines bool

	line []byte // current line, reused
	buf  []byte // bytes of the message being read, reused
	offs []int  // key start, key end, value end (value starts at key end+sep)
}

// NewReader returns a Reader with default limits.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 32<<10)}
}

// ReadBanner reads Asterisk's greeting line, e.g. "Asterisk Call
// Manager/11.0.0", and returns the AMI version after the slash.
func (r *Reader) ReadBanner() (version string, err error) {
	line, _, err := r.readLine()
	if err != nil {
		return "", fmt.Errorf("read banner: %w", err)
	}
	s := string(line)
	name, ver, ok := strings.Cut(s, "/")
	if !ok || !strings.Contains(name, "Call Manager") {
		return "", fmt.Errorf("%w: %q", ErrBadBanner, s)
	}
	return ver, nil
}

// Buffered reports how many bytes are buffered but not yet parsed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadMessage reads one message, up to and including its blank line.
//
// A stray blank line yields a Message with no headers (Asterisk answers it
// with "Missing action in request"), unless SkipBlankLines is set. ErrLineTooLong and
// ErrMessageTooLarge come back together with the headers that were read,
// and the Reader stays usable: the offending message was consumed whole.
// io.EOF is returned only at a clean message boundary.
func (r *Reader) ReadMessage() (*Message, error) {
	maxMsg := r.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = DefaultMaxMessageBytes
	}
	r.buf = r.buf[:0]
	r.offs = r.offs[:0]
	var flagged error
	size := 0
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && (len(r.offs) > 0 || len(line) > 0 || size > 0) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 && !tooLong {
			if r.SkipBlankLines && size == 0 && len(r.offs) == 0 && flagged == nil {
				continue // between messages: Park's extra CRLF
			}
			break
		}
		size += len(line) + 2
		switch {
		case tooLong:
			if flagged == nil {
				flagged = ErrLineTooLong
			}
			continue
		case size > maxMsg:
			flagged = fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, maxMsg)
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		ks := len(r.buf)
		r.buf = append(r.buf, line[:colon]...)
		ke := len(r.buf)
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		r.buf = append(r.buf, v...)
		r.offs = append(r.offs, ks, ke, len(r.buf))
	}
	s := string(r.buf) // one allocation for every key and value of the message
	m := &Message{Headers: make([]Header, len(r.offs)/3)}
	for i := range m.Headers {
		ks, ke, ve := r.offs[3*i], r.offs[3*i+1], r.offs[3*i+2]
		m.Headers[i] = Header{Key: s[ks:ke], Value: s[ke:ve]}
	}
	return m, flagged
}

// readLine returns the next line without its LF and one CR before it. The
// slice is valid until the next call. tooLong reports a line over
// MaxLineBytes (its bytes are discarded).
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	r.line = r.line[:0]
	limit := r.MaxLineBytes
	if limit <= 0 {
		limit = r.MaxMessageBytes
		if limit <= 0 {
			limit = DefaultMaxMessageBytes
		}
	}
	total := 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		total += len(chunk)
		if total > limit {
			tooLong = true
		} else {
			r.line = append(r.line, chunk...)
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			line = r.line[:len(r.line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a line longer than the bufio buffer: keep reading it
		default:
			if total > 0 && errors.Is(err, io.EOF) {
				return r.line, tooLong, io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
	}
}
