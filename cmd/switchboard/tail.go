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

// eventsCommand is `switchboard events tail`: the GET /v1/events
// WebSocket of one enterprise, one event a line on stdout. When the stream
// ends (server restart, slow consumer, network) it reconnects with
// after=<last seq seen>, so the output has no gap and no duplicate.
func eventsCommand() *command {
	return &command{
		path: "events tail", group: groupOperate,
		summary: "follow the live call events of an enterprise",
		about: `Prints one event a line: JSON as the API sends it (--format json, the
default) or a line of a table (--format table). When the stream ends
(control plane restart, slow consumer, network) it reconnects with
after=<last seq>, so every event is printed once, in order; --once exits
instead. Stream notices (stream.live, stream.truncated) go to stderr.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			after := fs.Int64("after", -1, "start after this sequence number `SEQ` (replays what is stored since); default: live events only")
			pbx := fs.String("pbx", "", "only this PBX's events (its agent `ID`)")
			types := fs.String("types", "", "only these event `TYPES`, comma-separated (e.g. call.answered,call.ended)")
			format := fs.String("format", "json", "output `FORMAT`: json (one object a line) or table")
			once := fs.Bool("once", false, "exit when the stream ends instead of resuming")
			cf.register(fs, "API key (events:read) or operator JWT")
			completeWords(fs, "format", "json", "table")
			completeWords(fs, "types", eventTypes...)
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs("events tail", args); err != nil {
					return err
				}
				var print func(data []byte) error
				switch *format {
				case "json":
					print = func(data []byte) error { _, err := fmt.Fprintf(e.stdout, "%s\n", data); return err }
				case "table":
					print = newEventTable(e.stdout).print
				default:
					return usagef("--format: want json or table, got %q", *format)
				}
				api, err := cf.connect(fs, "an API key with events:read or an operator JWT is required: --token-file, SWITCHBOARD_TOKEN or --token")
				if err != nil {
					return err
				}
				u, _ := url.Parse(api.base + "/v1/events")
				t := tailer{client: api.http, url: u, token: api.token, pbx: *pbx, types: *types, after: *after, print: print, errw: e.stderr}
				return t.run(ctx, *once)
			}
		},
	}
}

// run follows the stream until ctx ends, reconnecting unless once.
func (t *tailer) run(ctx context.Context, once bool) error {
	wait := time.Second
	for {
		progressed, err := t.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if once || fatal(err) {
			return err
		}
		if progressed {
			wait = time.Second
		}
		fmt.Fprintf(t.errw, "events tail: %v; resuming after=%d in %s\n", err, t.after, wait)
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
	print      func(event []byte) error
	errw       io.Writer
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
		if resp != nil && resp.StatusCode >= 400 {
			// The dialer kept the start of the body: the API's message.
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(io.LimitReader(resp.Body, apiResponseLimit))
			}
			return false, newAPIError(http.MethodGet, "/v1/events", resp, body)
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
		if err := t.print(data); err != nil {
			return progressed, fmt.Errorf("%w: %v", errOutput, err)
		}
	}
}

var (
	// errOutput: stdout is gone (e.g. a closed pipe); not retried.
	errOutput = errors.New("write output")
)

// fatal says whether reconnecting cannot help.
func fatal(err error) bool {
	var ce *closeError
	if errors.As(err, &ce) {
		return !ce.resumable()
	}
	// The server refused the request itself (bad credentials, a bad
	// query): asking again will not help.
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status < 500
	}
	return errors.Is(err, errOutput)
}
