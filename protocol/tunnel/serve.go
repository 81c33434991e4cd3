package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Defaults for ServeConfig.
const (
	// DefaultMaxInFlight bounds requests run at once; more are answered
	// with protocol.ErrCodeBusy without calling the handler.
	DefaultMaxInFlight = 64
	// DefaultIOTimeout bounds reading a request after its stream opened
	// and writing the response after the handler returned.
	DefaultIOTimeout = 10 * time.Second
)

// RequestHandler runs one request. ctx ends at the request's deadline or
// when serving stops. The result is marshalled into Response.Result. A
// *protocol.Error (anywhere in err's chain) is sent as is; a deadline
// becomes protocol.ErrCodeTimeout; anything else is logged and sent as
// protocol.ErrCodeInternal without details.
type RequestHandler func(ctx context.Context, req protocol.Request) (result any, err error)

// ServeConfig configures ServeRequests.
type ServeConfig struct {
	MaxInFlight   int           // default DefaultMaxInFlight
	MaxFrameBytes int           // request frame limit; default protocol.DefaultMaxFrameBytes
	IOTimeout     time.Duration // default DefaultIOTimeout
	Logger        *slog.Logger  // nil discards
}

// Validate says exactly what is wrong with the configuration.
func (c ServeConfig) Validate() error {
	var errs []error
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d is negative", c.MaxInFlight))
	}
	if c.MaxFrameBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxFrameBytes %d is negative", c.MaxFrameBytes))
	}
	if c.IOTimeout < 0 {
		errs = append(errs, fmt.Errorf("IOTimeout %v is negative", c.IOTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid serve config: %w", err)
	}
	return nil
}

func (c *ServeConfig) fill() {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = protocol.DefaultMaxFrameBytes
	}
	if c.IOTimeout == 0 {
		c.IOTimeout = DefaultIOTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ServeRequests is the agent's side of request streams: it accepts
// protocol.StreamRequest streams on sess, and for each one reads a
// protocol.Request, calls h under the request's deadline and writes the
// protocol.Response, concurrently up to MaxInFlight. Streams of other kinds
// are closed. It returns when ctx ends or the session dies, after every
// handler it started has returned.
func ServeRequests(ctx context.Context, sess *Session, h RequestHandler, cfg ServeConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.fill()
	log := cfg.Logger.With("component", "tunnel")

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, cfg.MaxInFlight)
	for {
		conn, kind, err := sess.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if kind != protocol.StreamRequest && kind != protocol.StreamBody {
			log.Warn("closing unexpected stream", "kind", kind)
			_ = conn.Close()
			continue
		}
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				serveRequest(ctx, conn, kind, h, cfg, log)
			})
		default:
			// Refused inline: it is quick (the request follows its
			// kind byte at once) and slows the accept loop while we
			// are saturated, which is the back-pressure we want.
			refuseBusy(conn, cfg, log)
		}
	}
}

func serveRequest(ctx context.Context, conn net.Conn, kind protocol.StreamKind, h RequestHandler, cfg ServeConfig, log *slog.Logger) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(cfg.IOTimeout))
	var req protocol.Request
	if err := protocol.ReadFrame(conn, &req, cfg.MaxFrameBytes); err != nil {
		log.Warn("bad request stream", "err", err)
		return
	}
	resp := protocol.Response{ID: req.ID}
	var body Body
	if req.Deadline.IsZero() {
		resp.Error = &protocol.Error{Code: protocol.ErrCodeInvalid, Message: "request has no deadline"}
	} else {
		rctx, cancel := context.WithDeadline(ctx, req.Deadline)
		result, err := callHandler(rctx, h, req)
		cancel()
		if b, ok := result.(Body); ok && err == nil {
			body, result = b, b.Result()
			defer body.Close()
			if kind != protocol.StreamBody {
				body, err = nil, &protocol.Error{Code: protocol.ErrCodeInvalid,
					Message: "operation " + req.Op + " answers with bytes: send it on a body stream"}
			}
		}
		if err != nil {
			resp.Error = responseError(rctx, err, req, log)
		} else if resp.Result, err = json.Marshal(result); err != nil {
			log.Error("encode result", "op", req.Op, "id", req.ID, "err", err)
			resp.Result = nil
			resp.Error = &protocol.Error{Code: protocol.ErrCodeInternal, Message: "internal error"}
			body = nil
		}
	}
	_ = conn.SetWriteDeadline(time.Now().Add(cfg.IOTimeout))
	if err := protocol.WriteFrame(conn, resp); err != nil {
		log.Debug("response not delivered", "op", req.Op, "id", req.ID, "err", err)
		return
	}
	if kind == protocol.StreamBody && resp.Error == nil {
		writeBody(conn, body, req, log)
	}
}

// Body is a handler result whose bytes follow the Response on a
// protocol.StreamBody stream (a recording). Result is sent as the
// Response's result; the tunnel then copies Reader, chunked, and closes
// the Body whatever happens.
type Body interface {
	Result() any
	io.Reader
	io.Closer
}

// writeBody sends a body stream's bytes (none when body is nil) under the
// request's deadline: the control plane chose it for the whole transfer.
func writeBody(conn net.Conn, body Body, req protocol.Request, log *slog.Logger) {
	_ = conn.SetWriteDeadline(req.Deadline)
	bw := protocol.NewBodyWriter(conn)
	if body != nil {
		if n, err := bw.ReadFrom(body); err != nil {
			// The control plane sees the body cut short (no final chunk).
			log.Warn("body not delivered", "op", req.Op, "id", req.ID, "bytes", n, "err", err)
			return
		}
	}
	if err := bw.Close(); err != nil {
		log.Debug("body end not delivered", "op", req.Op, "id", req.ID, "err", err)
	}
}

// callHandler keeps a panicking handler from taking the agent down.
func callHandler(ctx context.Context, h RequestHandler, req protocol.Request) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, req)
}

func responseError(ctx context.Context, err error, req protocol.Request, log *slog.Logger) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &protocol.Error{Code: protocol.ErrCodeTimeout, Message: "deadline exceeded"}
	}
	log.Error("request failed", "op", req.Op, "id", req.ID, "err", err)
	return &protocol.Error{Code: protocol.ErrCodeInternal, Message: "internal error"}
}

func refuseBusy(conn net.Conn, cfg ServeConfig, log *slog.Logger) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(cfg.IOTimeout))
	var req protocol.Request
	if err := protocol.ReadFrame(conn, &req, cfg.MaxFrameBytes); err != nil {
		return
	}
	log.Warn("refusing request: too many in flight", "op", req.Op, "id", req.ID, "max_in_flight", cfg.MaxInFlight)
	_ = protocol.WriteFrame(conn, protocol.Response{
		ID:    req.ID,
		Error: &protocol.Error{Code: protocol.ErrCodeBusy, Message: fmt.Sprintf("agent is running %d requests", cfg.MaxInFlight)},
	})
}
