package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
)

// DefaultMaxFrameBytes bounds one frame body. The largest message we expect
// is a ChannelsResult of a busy PBX (a few hundred bytes per channel), so
// 1 MiB leaves room for thousands of live channels while keeping what one
// misbehaving peer can make us allocate per stream small.
const DefaultMaxFrameBytes = 1 << 20

// frameHeaderBytes is the size of the big-endian length prefix.
const frameHeaderBytes = 4

// readChunkBytes is how much ReadFrame allocates ahead of data actually
// received, so a peer that announces a large frame and then stalls costs us
// at most this much, not the announced size.
const readChunkBytes = 64 << 10

// ErrEmptyFrame is returned by ReadFrame for a frame whose length prefix is
// zero: every message is a JSON value, so an empty body is always a bug or
// an attack.
var ErrEmptyFrame = errors.New("protocol: empty frame")

// FrameTooLargeError reports a frame whose announced length exceeds the
// reader's limit. Nothing of the body has been read or allocated.
type FrameTooLargeError struct {
	Size int64 // announced body length
	Max  int   // limit in force
}

func (e *FrameTooLargeError) Error() string {
	return "protocol: frame of " + strconv.FormatInt(e.Size, 10) +
		" bytes exceeds limit of " + strconv.Itoa(e.Max) + " bytes"
}

// UnknownKindError reports a stream opened with a kind this build does not
// know: the peer speaks a newer protocol or is broken.
type UnknownKindError struct {
	Kind StreamKind
}

func (e *UnknownKindError) Error() string {
	return "protocol: unknown stream kind " + strconv.Itoa(int(e.Kind))
}

// String names the kind for logs.
func (k StreamKind) String() string {
	switch k {
	case StreamControl:
		return "control"
	case StreamRequest:
		return "request"
	case StreamEvents:
		return "events"
	case StreamBody:
		return "body"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Known reports whether this build knows the kind.
func (k StreamKind) Known() bool {
	return k >= StreamControl && k <= StreamBody
}

var frameBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrameBytes keeps one exceptional frame from pinning a large
// buffer in the pool forever.
const maxPooledFrameBytes = 64 << 10

// WriteFrame encodes v as JSON and writes it as one frame (length prefix and
// body) in a single Write call, so a frame is never interleaved with another
// writer's bytes on a stream that is shared by mistake, and a yamux stream
// sends it as one data frame when the window allows.
func WriteFrame(w io.Writer, v any) error {
	buf := frameBufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledFrameBytes {
			buf.Reset()
			frameBufPool.Put(buf)
		}
	}()
	buf.Write([]byte{0, 0, 0, 0})
	enc := json.NewEncoder(buf)
	// Messages carry channel names and dial strings such as "<sip:…>";
	// HTML escaping would only make them harder to read in captures.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	b := buf.Bytes()
	b = b[:len(b)-1] // Encode's trailing newline is not part of the body.
	size := len(b) - frameHeaderBytes
	if size > math.MaxUint32 {
		return &FrameTooLargeError{Size: int64(size), Max: math.MaxUint32}
	}
	binary.BigEndian.PutUint32(b, uint32(size))
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame and decodes its JSON body into v. A body longer
// than max bytes is refused with *FrameTooLargeError before any of it is
// read; max <= 0 means DefaultMaxFrameBytes. Memory grows with the bytes
// actually received, never beyond max. io.EOF is returned as is when the
// stream ends cleanly before a frame starts.
func ReadFrame(r io.Reader, v any, max int) error {
	if max <= 0 {
		max = DefaultMaxFrameBytes
	}
	var hdr [frameHeaderBytes]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("read frame header: %w", err)
	}
	size := int64(binary.BigEndian.Uint32(hdr[:]))
	if size == 0 {
		return ErrEmptyFrame
	}
	if size > int64(max) {
		return &FrameTooLargeError{Size: size, Max: max}
	}
	body, err := readBody(r, int(size))
	if err != nil {
		return fmt.Errorf("read frame body: %w", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// readBody reads exactly size bytes, growing the buffer in chunks so that
// allocation follows the data that actually arrives.
func readBody(r io.Reader, size int) ([]byte, error) {
	if size <= readChunkBytes {
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, noEOF(err)
		}
		return body, nil
	}
	body := make([]byte, 0, readChunkBytes)
	for len(body) < size {
		n := min(size-len(body), readChunkBytes)
		if cap(body)-len(body) < n {
			// Double, but never past size: append's own growth could
			// round the capacity above the caller's limit.
			grown := make([]byte, len(body), min(size, 2*cap(body)))
			copy(grown, body)
			body = grown
		}
		body = body[:len(body)+n]
		if _, err := io.ReadFull(r, body[len(body)-n:]); err != nil {
			return nil, noEOF(err)
		}
	}
	return body, nil
}

// noEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF: the
// length prefix promised more.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteKind writes the one byte that opens every stream.
func WriteKind(w io.Writer, k StreamKind) error {
	if _, err := w.Write([]byte{byte(k)}); err != nil {
		return fmt.Errorf("write stream kind: %w", err)
	}
	return nil
}

// ReadKind reads the byte that opens a stream. A kind this build does not
// know is returned together with *UnknownKindError, so the caller can log
// it and reset the stream.
func ReadKind(r io.Reader) (StreamKind, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("read stream kind: %w", err)
	}
	k := StreamKind(b[0])
	if !k.Known() {
		return k, &UnknownKindError{Kind: k}
	}
	return k, nil
}
