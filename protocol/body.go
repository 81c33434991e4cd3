package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// StreamBody (protocol 3) is opened by the control plane for one Request
// whose answer is a stream of bytes (OpRecordingFetch): the agent writes
// the Response frame and then, when the Response carries no error, the
// body as chunks. A chunk is a 4-byte big-endian length and that many raw
// bytes, at most MaxChunkBytes; a chunk of length zero ends the body. A
// stream that ends before that last chunk was cut short, so a truncated
// body is never mistaken for a whole one. The reader's memory is one
// chunk, whatever the body's size, and yamux's stream window holds back a
// writer faster than the reader.
//
// It is a kind of its own, not a request stream, because the contract
// differs (bytes follow the Response): an agent of protocol 2 never sees
// one, the control plane refuses OpRecordingFetch to it (agent_too_old).
const StreamBody StreamKind = 4

// MaxChunkBytes bounds one body chunk; a larger announced length is a
// broken or hostile peer.
const MaxChunkBytes = 64 << 10

// ErrChunkTooLarge: a body chunk announced more than MaxChunkBytes.
var ErrChunkTooLarge = errors.New("protocol: body chunk exceeds MaxChunkBytes")

var errBodyClosed = errors.New("protocol: write to a closed body")

// BodyWriter writes a body as chunks: each Write of up to MaxChunkBytes is
// one chunk (longer ones are split), and Close writes the final empty
// chunk. It buffers nothing.
type BodyWriter struct {
	w      io.Writer
	hdr    [frameHeaderBytes + MaxChunkBytes]byte
	closed bool
}

// NewBodyWriter returns a BodyWriter on w.
func NewBodyWriter(w io.Writer) *BodyWriter { return &BodyWriter{w: w} }

// Write sends p as one or more chunks. An empty p sends nothing (an empty
// chunk would end the body).
func (b *BodyWriter) Write(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	n := 0
	for len(p) > 0 {
		c := copy(b.hdr[frameHeaderBytes:], p)
		if err := b.writeChunk(c); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// writeChunk sends the n bytes after b.hdr's length as one chunk: one
// Write, header and bytes together, so a yamux stream sends it as one data
// frame when its window allows.
func (b *BodyWriter) writeChunk(n int) error {
	binary.BigEndian.PutUint32(b.hdr[:frameHeaderBytes], uint32(n))
	if _, err := b.w.Write(b.hdr[:frameHeaderBytes+n]); err != nil {
		return fmt.Errorf("write body chunk: %w", err)
	}
	return nil
}

// ReadFrom copies r to the body, one chunk per read of r.
func (b *BodyWriter) ReadFrom(r io.Reader) (int64, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	var total int64
	for {
		n, err := r.Read(b.hdr[frameHeaderBytes:])
		if n > 0 {
			if werr := b.writeChunk(n); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close ends the body with the empty chunk. It does not close w.
func (b *BodyWriter) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if _, err := b.w.Write([]byte{0, 0, 0, 0}); err != nil {
		return fmt.Errorf("end body: %w", err)
	}
	return nil
}

// BodyReader reads a chunked body: io.EOF after the final empty chunk,
// io.ErrUnexpectedEOF if the stream ends before it, ErrChunkTooLarge for
// a chunk over MaxChunkBytes. It reads straight into the caller's buffer.
type BodyReader struct {
	r    io.Reader
	left int // bytes left in the current chunk
	done bool
	err  error
}

// NewBodyReader returns a BodyReader on r.
func NewBodyReader(r io.Reader) *BodyReader { return &BodyReader{r: r} }

func (b *BodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	for b.left == 0 {
		var hdr [frameHeaderBytes]byte
		if _, err := io.ReadFull(b.r, hdr[:]); err != nil {
			b.err = noEOF(err)
			return 0, b.err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			b.done = true
			return 0, io.EOF
		}
		if n > MaxChunkBytes {
			b.err = ErrChunkTooLarge
			return 0, b.err
		}
		b.left = int(n)
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}
