package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// Limits of `switchboard webhook listen`.
const (
	// defaultWebhookListen is where the receiver listens by default.
	defaultWebhookListen = "127.0.0.1:9000"
	// defaultWebhookBodyLimit is the default --max-body-bytes: the
	// largest delivery body read (an event is ~1 KB); past it, 413.
	defaultWebhookBodyLimit = 1 << 20
	// defaultWebhookTolerance is the default --tolerance: how far a
	// signature's t= may be from now before the delivery is refused as
	// a replay.
	defaultWebhookTolerance = 5 * time.Minute
	// webhookReadTimeout bounds reading one request, headers and body.
	webhookReadTimeout = 10 * time.Second
	// webhookShutdownTimeout bounds the wait for requests in flight
	// after Ctrl-C.
	webhookShutdownTimeout = 5 * time.Second
)

func webhookListenCommand() *command {
	return &command{
		path: "webhook listen", args: "--secret-file F | --secret S", group: groupOperate,
		summary: "receive webhook deliveries here, check their signature and print them",
		about: `A small receiver to try webhooks, or to see what a CRM would get: every
POST is checked like a receiver should (Switchboard-Signature, HMAC-SHA256
of "<t>.<body>" with the webhook's secret, t within --tolerance of now) and
printed, one line per delivery, or one JSON object with --json. A good
delivery is answered 200; a bad or missing signature 401, printed as
REJECTED. The secret is the one POST /v1/webhooks answered with. The control
plane refuses webhook URLs on loopback or private addresses unless it runs
with --webhook-allow-private-targets (` + "`switchboard demo`" + ` does).`,
		define: func(fs *pflag.FlagSet) action {
			listen := fs.String("listen", defaultWebhookListen, "`ADDRESS` to listen on (port 0: any free port)")
			secretFile := fs.String("secret-file", "", "`FILE` holding the webhook's secret")
			secret := fs.String("secret", "", "the webhook's secret itself (prefer --secret-file: argv is visible in ps)")
			tolerance := fs.Duration("tolerance", defaultWebhookTolerance, "refuse a delivery signed further than this from now (replay protection)")
			maxBody := fs.Int64("max-body-bytes", defaultWebhookBodyLimit, "answer 413 to a delivery body larger than this")
			asJSON := fs.Bool("json", false, "print one JSON object per delivery")
			completeFiles(fs, "secret-file")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs("webhook listen", args); err != nil {
					return err
				}
				key, err := secretArg("secret", *secret, *secretFile, "the webhook's secret is required: --secret-file or --secret")
				if err != nil {
					return err
				}
				if *tolerance <= 0 {
					return usagef("--tolerance must be positive")
				}
				if *maxBody <= 0 {
					return usagef("--max-body-bytes must be positive")
				}
				ln, err := net.Listen("tcp", *listen)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "switchboard: receiving webhook deliveries on http://%s/ (Ctrl-C stops)\n", ln.Addr())
				rcv := &receiver{secret: key, tolerance: *tolerance, maxBody: *maxBody, now: e.now, out: e.stdout, json: *asJSON}
				return serveUntilDone(ctx, ln, rcv)
			}
		},
	}
}

// serveUntilDone serves h on ln until ctx ends, then lets the requests in
// flight finish.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadTimeout: webhookReadTimeout, ReadHeaderTimeout: webhookReadTimeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), webhookShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// receiver checks and prints webhook deliveries.
type receiver struct {
	secret    string
	tolerance time.Duration
	maxBody   int64
	now       func() time.Time
	json      bool

	mu  sync.Mutex // one delivery's output at a time
	out io.Writer
}

// delivery is one request as printed.
type delivery struct {
	Time     time.Time       `json:"time"`
	Status   int             `json:"status"`
	Verified bool            `json:"verified"`
	Error    string          `json:"error,omitempty"`
	ID       string          `json:"delivery,omitempty"`
	Attempt  string          `json:"attempt,omitempty"`
	Type     string          `json:"event_type,omitempty"`
	Event    json.RawMessage `json:"event,omitempty"`
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := delivery{Time: rc.now(), ID: r.Header.Get(events.DeliveryHeader), Attempt: r.Header.Get(events.AttemptHeader),
		Type: r.Header.Get(events.EventHeader)}
	d.Status, d.Error = rc.check(w, r, &d)
	if d.Status != http.StatusOK {
		http.Error(w, d.Error, d.Status)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	rc.print(d)
}

// check reads and verifies the request; a failure is a status and why.
func (rc *receiver) check(w http.ResponseWriter, r *http.Request, d *delivery) (int, string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, r.Method + " is not a delivery: deliveries are POSTs"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes (--max-body-bytes)", rc.maxBody)
	case err != nil:
		return http.StatusBadRequest, "read body: " + err.Error()
	}
	sig := r.Header.Get(events.SignatureHeader)
	if sig == "" {
		return http.StatusUnauthorized, "no " + events.SignatureHeader + " header"
	}
	if err := events.Verify(rc.secret, sig, body, rc.now(), rc.tolerance); err != nil {
		return http.StatusUnauthorized, err.Error()
	}
	d.Verified = true
	if json.Valid(body) {
		d.Event = body
	}
	return http.StatusOK, ""
}

func (rc *receiver) print(d delivery) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.json {
		b, _ := json.Marshal(d)
		fmt.Fprintf(rc.out, "%s\n", b)
		return
	}
	head := fmt.Sprintf("%s  %d %-8s  %s  attempt %s  %s", d.Time.Local().Format(time.TimeOnly), d.Status,
		map[bool]string{true: "verified", false: "REJECTED"}[d.Verified], dash(d.ID), dash(d.Attempt), dash(d.Type))
	if !d.Verified {
		fmt.Fprintf(rc.out, "%s  %s\n", head, d.Error)
		return
	}
	var ev eventRow
	if d.Event == nil || json.Unmarshal(d.Event, &ev) != nil {
		fmt.Fprintf(rc.out, "%s  (the body is not a JSON event)\n", head)
		return
	}
	line := fmt.Sprintf("%s  seq %d  call %s  %s → %s  %s", head, ev.Seq, dash(ev.CallID), dash(ev.From), dash(ev.To), dash(ev.Status))
	if det := ev.detail(); det != "" {
		line += "  " + det
	}
	fmt.Fprintln(rc.out, line)
}
