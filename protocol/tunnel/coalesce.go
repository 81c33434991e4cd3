package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
)

// yamux frame header layout (see yamux's spec.md): version(1) type(1)
// flags(2) stream id(4) length(4). For a data frame, length is the number
// of body bytes that follow the header on the wire.
const (
	yamuxTypeData = 0
	// coalesceMaxBody is the largest data frame body merged with its
	// header. Requests, responses and events are far smaller; bulk
	// transfers gain nothing from saving one message per 256 KiB.
	coalesceMaxBody = 16 << 10
)

// coalescer sits between yamux and the WebSocket net.Conn, where every
// Write becomes one WebSocket message and, on an otherwise idle link, one
// syscall. yamux writes a data frame as two Writes (header, then body);
// merging them halves the messages of a request/response exchange. It
// relies only on the yamux wire format: a data header announcing N body
// bytes is always followed by exactly those N bytes, so holding the
// header back until they arrive never reorders or stalls the stream.
// Only yamux's single send loop writes, so there is no locking.
type coalescer struct {
	net.Conn
	// closeNow replaces the Conn's Close when set (see newSession).
	closeNow func() error
	buf      []byte // pending header + body gathered so far
	pending  int    // body bytes still expected for buf
}

// coalesceBufs holds the merge buffers: a session borrows one only while
// a frame is being merged, so 10,000 idle tunnels hold none (a buffer
// each would be 180 MiB).
var coalesceBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, yamuxHeaderBytes+coalesceMaxBody)
	return &b
}}

func newCoalescer(c net.Conn) *coalescer { return &coalescer{Conn: c} }

// Close is yamux's way to end the connection.
func (c *coalescer) Close() error {
	if c.closeNow != nil {
		return c.closeNow()
	}
	return c.Conn.Close()
}

func (c *coalescer) Write(p []byte) (int, error) {
	if c.pending > 0 {
		n := min(len(p), c.pending)
		c.buf = append(c.buf, p[:n]...)
		c.pending -= n
		if c.pending == 0 {
			err := c.flush()
			if err != nil {
				return 0, err
			}
		}
		if n == len(p) {
			return n, nil
		}
		// More than the announced body: write the rest as is.
		m, err := c.Write(p[n:])
		return n + m, err
	}
	if len(p) == yamuxHeaderBytes && p[1] == yamuxTypeData {
		if body := binary.BigEndian.Uint32(p[8:12]); body > 0 && body <= coalesceMaxBody {
			c.buf = append((*coalesceBufs.Get().(*[]byte))[:0], p...)
			c.pending = int(body)
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

func (c *coalescer) flush() error {
	_, err := c.Conn.Write(c.buf)
	b := c.buf[:0]
	coalesceBufs.Put(&b)
	c.buf = nil
	return err
}
