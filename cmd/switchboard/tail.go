package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"
)

// Limits of `switchboard events tail`.
const (
	// tailReadLimit bounds one WebSocket message (an event is ~1 KB).
	tailReadLimit = 1 << 20
	// tailRetryMax caps the wait between reconnects.
	tailRetryMax = 10 * time.Second
)

// eventsCmd runs `switchboard events tail`: the GET /v1/events WebSocket
// of one enterprise, one JSON event a line on stdout. When the stream ends
// (server restart, slow consumer, network) it reconnects with
// after=<last seq seen>, so the output has no gap and no duplicate.
func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "tail" {
		return usagef("events: want `events tail`")
	}
	fs := pflag.NewFlagSet("events tail", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, "API key (events:read) or operator JWT")
	after := fs.Int64("after", -1, "start after this sequence number (replays what is stored since); default: live events only")
	pbx := fs.String("pbx", "", "only this PBX's events (its agent id)")
	types := fs.String("types", "", "only these event types, comma-separated (e.g. call.answered,call.ended)")
	once := fs.Bool("once", false, "exit when the stream ends instead of resuming")
	if err := fs.Parse(args[1:]); err != nil {
		return usagef("%v", err)
	}
	if err := cf.applyEnv(fs); err != nil {
		return err
	}
	tok, err := cf.bearer("an API key with events:read or an operator JWT is required: --token-file, SWITCHBOARD_TOKEN or --token")
	if err != nil {
		return err
	}
	client, err := cf.httpClient()
	if err != nil {
		return err
	}
	u, err := url.Parse(strings.TrimRight(cf.server, "/") + "/v1/events")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return usagef("--server: want an http:// or https:// URL, got %q", cf.server)
	}
	t := tailer{client: client, url: u, token: tok, pbx: *pbx, types: *types, after: *after, out: stdout, errw: stderr}
	wait := time.Second
	for {
		progressed, err := t.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if *once || fatal(err) {
			return err
		}
		if progressed {
			wait = time.Second
		}
		fmt.Fprintf(stderr, "events tail: %v; resuming after=%d in %s\n", err, t.after, wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, tailRetryMax)
	}
}

type tailer struct {
	client     *http.Client
	url        *url.URL
	token      string
	pbx, types string
	after      int64 // -1: live only
	out, errw  io.Writer
}

// closeError is a stream the server closed, with its code and reason.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("stream closed (%d): %s", int(e.code), e.reason)
}

// resumable: everything but a refusal of the request itself.
func (e *closeError) resumable() bool {
	return e.code != websocket.StatusPolicyViolation || strings.HasPrefix(e.reason, "slow consumer")
}

// session runs one WebSocket connection; progressed says whether it
// delivered anything (which resets the reconnect backoff).
func (t *tailer) session(ctx context.Context) (bool, error) {
	u := *t.url
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	q := url.Values{}
	if t.after >= 0 {
		q.Set("after", strconv.FormatInt(t.after, 10))
	}
	if t.pbx != "" {
		q.Set("pbx", t.pbx)
	}
	if t.types != "" {
		q.Set("types", t.types)
	}
	u.RawQuery = q.Encode()
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: t.client,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + t.token}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 {
			// Bad credentials or a bad query: retrying will not help.
			return false, fmt.Errorf("GET /v1/events: %s: %w", resp.Status, errRefused)
		}
		return false, fmt.Errorf("connect: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(tailReadLimit)
	progressed := false
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				var ce websocket.CloseError
				errors.As(err, &ce)
				return progressed, &closeError{code: code, reason: ce.Reason}
			}
			return progressed, err
		}
		var head struct {
			Type string `json:"type"`
			Seq  int64  `json:"seq"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			return progressed, fmt.Errorf("server sent a message that is not JSON: %w", err)
		}
		// Control messages (stream.live, stream.truncated) say where the
		// stream stands; both kinds move the resume point.
		if head.Seq > t.after {
			t.after = head.Seq
		}
		progressed = true
		if strings.HasPrefix(head.Type, "stream.") {
			fmt.Fprintf(t.errw, "events tail: %s (seq %d)\n", head.Type, head.Seq)
			continue
		}
		if _, err := fmt.Fprintf(t.out, "%s\n", data); err != nil {
			return progressed, fmt.Errorf("%w: %v", errOutput, err)
		}
	}
}

var (
	// errRefused: the server refused the request (4xx); not retried.
	errRefused = errors.New("refused")
	// errOutput: stdout is gone (e.g. a closed pipe); not retried.
	errOutput = errors.New("write output")
)

// fatal says whether reconnecting cannot help.
func fatal(err error) bool {
	var ce *closeError
	if errors.As(err, &ce) {
		return !ce.resumable()
	}
	return errors.Is(err, errRefused) || errors.Is(err, errOutput)
}
