package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// FetchPath is the internal route a replica forwards a request whose
// answer is a body (a recording) to (api.ClusterFetchPath). The holder
// answers 200 with its reply (a forwardReply) on the first line, then, when
// the reply is ok, the bytes as they come from the agent.
const FetchPath = "/cluster/v1/fetch"

// maxForwardedFetch bounds the deadline a forwarded fetch may carry (the
// API's --recording-download-timeout is 10 minutes by default).
const maxForwardedFetch = 2 * time.Hour

// maxFetchReplyBytes bounds a forwarded fetch's reply line.
const maxFetchReplyBytes = 64 << 10

// Fetch is Call for an op that answers with bytes (fleet.Conn.Fetch):
// run on this replica's session, or forwarded once to the holder, whose
// body streams through this replica.
func (c *Cluster) Fetch(ctx context.Context, agentID, op string, args, result any) (io.ReadCloser, error) {
	var body io.ReadCloser
	err := c.viaHolder(ctx, agentID, op, args,
		func(conn *fleet.Conn) error {
			var err error
			body, err = conn.Fetch(ctx, op, args, result)
			return err
		},
		func(holder store.Replica, req forwardRequest) (forwardReply, error) {
			rep, b, err := c.forwardFetch(ctx, holder, req)
			if err = c.outcome(ctx, agentID, op, holder, rep, err, result); err != nil {
				if b != nil {
					b.Close()
				}
				return rep, err
			}
			body = b
			return rep, nil
		})
	return body, err
}

// forwardFetch posts req to holder's FetchPath and reads its reply line;
// the rest of the answer is the body.
func (c *Cluster) forwardFetch(ctx context.Context, holder store.Replica, req forwardRequest) (forwardReply, io.ReadCloser, error) {
	var rep forwardReply
	resp, err := c.post(ctx, holder, FetchPath, req)
	if err != nil {
		return rep, nil, err
	}
	// The reply line is small (the op's result, a file's facts); a line
	// longer than the buffer is an error (bufio.ErrBufferFull).
	br := bufio.NewReaderSize(resp.Body, maxFetchReplyBytes)
	line, err := br.ReadSlice('\n')
	if err != nil {
		resp.Body.Close()
		return rep, nil, fmt.Errorf("read reply: %w", err)
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		resp.Body.Close()
		return rep, nil, fmt.Errorf("decode reply: %w", err)
	}
	// The bytes that follow are the download, bounded by the caller's
	// deadline.
	return rep, readCloser{br, resp.Body}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// HandleFetch serves a forwarded fetch (POST FetchPath): it checks the
// signature (ErrUnauthenticated, before anything is written), runs the op
// on this replica's session of the agent, then writes the reply line and
// the body to the writer start gives it. A fetch only reads, so it ends
// when the forwarding replica goes.
func (c *Cluster) HandleFetch(ctx context.Context, h http.Header, body []byte, start func() io.Writer) error {
	in, rep, err := c.accept(h, FetchPath, body, maxForwardedFetch)
	if err != nil {
		return err
	}
	if rep != nil {
		return writeReply(start(), *rep)
	}
	cctx, cancel := context.WithDeadline(fleet.WithRequestID(ctx, in.req.RequestID), in.deadline)
	defer cancel()
	var result json.RawMessage
	rc, err := in.conn.Fetch(cctx, in.req.Op, in.args(), &result)
	w := start()
	if err := writeReply(w, replyOf(err, result)); err != nil || rc == nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("fetch %s from agent %s for another replica: %w", in.req.Op, in.req.Agent, err)
	}
	return nil
}

func writeReply(w io.Writer, rep forwardReply) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
