package api

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
)

// body is a request body as the chain hands it to handlers: bounded in
// size (MaxBodyBytes) and in time (BodyTimeout: a read deadline on the
// connection, set when the headers are read and lifted once the body is
// read to its end, so it never cuts a slow handler short). It remembers
// whether it was read to its end, which decides how the reply leaves the
// connection (see call.finishBody). Handlers read it on the request's
// goroutine, as flush does.
type body struct {
	io.ReadCloser
	rc       *http.ResponseController
	eof      bool
	timedOut bool
}

// newBody wraps r's body; nil when the request has none.
func newBody(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) *body {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(timeout))
	b := &body{ReadCloser: http.MaxBytesReader(w, r.Body, maxBytes), rc: rc}
	r.Body = b
	return b
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if !b.eof {
			b.eof = true
			// net/http now reads ahead to notice a client that hangs up
			// (its background read); that read must not time out.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
	}
	return n, err
}

// finishBody is called before the reply is written. A body not read to
// its end (refused before it was read — a 401 —, too large, or too slow)
// is not drained: net/http would read up to 256 KiB of it after the reply,
// at the sender's pace, to keep the connection. The connection is closed
// instead, and that read fails at once. Every response gets WriteTimeout
// to be sent (a previous response's deadline was cleared in serve).
func (c *call) finishBody() {
	rc := http.NewResponseController(c.w)
	if b := c.reqBody; b != nil && !b.eof {
		c.w.Header().Set("Connection", "close")
		_ = rc.SetReadDeadline(time.Now())
		reason := shedUnreadBody
		if b.timedOut {
			reason = shedBodyTimeout
		}
		c.api.cfg.Observer.ConnShed(reason)
	}
	_ = rc.SetWriteDeadline(time.Now().Add(c.api.cfg.WriteTimeout))
}

// Reasons of Observer.ConnShed, connlimit's names.
const (
	shedUnreadBody  = connlimit.ShedUnreadBody
	shedBodyTimeout = connlimit.ShedBodyTimeout
)
