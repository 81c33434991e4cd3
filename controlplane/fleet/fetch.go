package fleet

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Fetch sends op (one that answers with bytes, such as
// protocol.OpRecordingFetch) on a protocol.StreamBody stream, decodes the
// Response's result into result and returns the body that follows. The
// body reads straight from the tunnel, a chunk at a time (memory does not
// grow with its size), and fails with io.ErrUnexpectedEOF if the agent's
// stream ends before the body's end. ctx's deadline bounds the whole
// transfer; Close the body to release the stream. Errors are those of
// Call.
func (c *Conn) Fetch(ctx context.Context, op string, args, result any) (io.ReadCloser, error) {
	// request refuses a view of another replica's session, which has no
	// tunnel here to open a stream on.
	req, err := c.request(ctx, op, args)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from agent %s: %w", op, c.AgentID, err)
	}
	stream, err := c.sess.Open(ctx, protocol.StreamBody)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from agent %s: %w", op, c.AgentID, c.classify(ctx, err))
	}
	_ = stream.SetDeadline(req.Deadline)
	stop := context.AfterFunc(ctx, func() { _ = stream.SetDeadline(time.Now()) })
	fail := func(err error) (io.ReadCloser, error) {
		stop()
		_ = stream.Close()
		return nil, fmt.Errorf("fetch %s from agent %s: %w", op, c.AgentID, err)
	}
	if err := protocol.WriteFrame(stream, req); err != nil {
		return fail(c.classify(ctx, err))
	}
	var resp protocol.Response
	if err := protocol.ReadFrame(stream, &resp, c.MaxFrameBytes); err != nil {
		return fail(c.classify(ctx, err))
	}
	if err := decodeResponse(req, resp, result); err != nil {
		return fail(err)
	}
	return &body{c: c, ctx: ctx, stream: stream, stop: stop, r: protocol.NewBodyReader(stream)}, nil
}

// body is a fetched body: reads come from the tunnel stream, errors are
// classified like Call's (deadline, tunnel gone).
type body struct {
	c      *Conn
	ctx    context.Context
	stream net.Conn
	stop   func() bool
	r      io.Reader
	once   sync.Once
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = b.c.classify(b.ctx, err)
	}
	return n, err
}

func (b *body) Close() error {
	b.once.Do(func() {
		b.stop()
		_ = b.stream.Close()
	})
	return nil
}
