package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/internal/testio"
)

// streamScript is one connection of a scripted /v1/events server: the
// events it sends (by seq), then how it ends.
type streamScript struct {
	seqs  []int64
	code  websocket.StatusCode // 0: drop the TCP connection, no close frame
	close string
}

// scriptedEvents serves /v1/events from scripts, one per connection, and
// records each request's after= (the server side of resume is tested with
// the real service in controlplane/events).
type scriptedEvents struct {
	scripts []streamScript
	mu      sync.Mutex
	afters  []string
	status  int    // non-zero: refuse every request with it
	body    string // the refusal's body (default: "refused")
}

func (s *scriptedEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer sbk_test" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if s.status != 0 {
		s.mu.Lock()
		s.afters = append(s.afters, r.URL.Query().Get("after"))
		s.mu.Unlock()
		if s.body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "req-42")
			w.WriteHeader(s.status)
			io.WriteString(w, s.body)
			return
		}
		http.Error(w, "refused", s.status)
		return
	}
	s.mu.Lock()
	n := len(s.afters)
	s.afters = append(s.afters, r.URL.Query().Get("after"))
	s.mu.Unlock()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	if n >= len(s.scripts) {
		// Out of script: stay open until the client goes.
		_, _, _ = c.Read(r.Context())
		c.CloseNow()
		return
	}
	sc := s.scripts[n]
	for _, seq := range sc.seqs {
		msg, _ := json.Marshal(map[string]any{"seq": seq, "type": "call.started", "call_id": fmt.Sprint("c", seq)})
		if err := c.Write(r.Context(), websocket.MessageText, msg); err != nil {
			return
		}
	}
	if sc.code == 0 {
		c.CloseNow()
		return
	}
	c.Close(sc.code, sc.close)
}

func (s *scriptedEvents) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.afters...)
}

// runTail runs `switchboard events tail` against srv until it returns or
// stop says the output is complete.
func runTail(t *testing.T, srv *httptest.Server, stop func(out string) bool, extra ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errw testio.Buffer
	done := make(chan error, 1)
	args := append([]string{"--server", srv.URL, "--token", "sbk_test"}, extra...)
	e := &env{stdout: &out, stderr: &errw, now: time.Now}
	go func() { done <- eventsCommand().exec(ctx, e, args) }()
	for {
		select {
		case err := <-done:
			return out.String(), errw.String(), err
		case <-time.After(20 * time.Millisecond):
			if stop != nil && stop(out.String()) {
				cancel()
				return out.String(), errw.String(), <-done
			}
		case <-ctx.Done():
			t.Fatalf("events tail did not finish; stdout %q stderr %q", out.String(), errw.String())
		}
	}
}

func seqsOf(t *testing.T, out string) []int64 {
	t.Helper()
	var seqs []int64
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e struct{ Seq int64 }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("output line %q is not JSON: %v", line, err)
		}
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// The stream ends three ways a control plane ends it — a restart (1012), a
// dropped connection, a slow-consumer close (1008) — and each time tail
// reconnects with after=<last seq printed>: every event once, in order.
func TestEventsTailResumes(t *testing.T) {
	ev := &scriptedEvents{scripts: []streamScript{
		{seqs: []int64{1, 2}, code: websocket.StatusServiceRestart, close: "server restarting"},
		{seqs: []int64{3}, code: 0},
		{seqs: []int64{4, 5}, code: websocket.StatusPolicyViolation, close: "slow consumer: 4096 events behind; resume with after=5"},
		{seqs: []int64{6}, code: websocket.StatusServiceRestart},
	}}
	srv := httptest.NewServer(ev)
	defer srv.Close()
	out, errOut, err := runTail(t, srv, func(out string) bool { return strings.Count(out, "\n") >= 6 }, "--after", "0")
	if err != nil {
		t.Fatalf("events tail: %v; stderr %s", err, errOut)
	}
	if got, want := fmt.Sprint(seqsOf(t, out)), "[1 2 3 4 5 6]"; got != want {
		t.Fatalf("printed seqs %s, want %s; stderr %s", got, want, errOut)
	}
	if got, want := fmt.Sprint(ev.requests()[:4]), "[0 2 3 5]"; got != want {
		t.Fatalf("after= of the connections %s, want %s", got, want)
	}
	for _, say := range []string{"resuming after=2", "resuming after=3", "resuming after=5"} {
		if !strings.Contains(errOut, say) {
			t.Errorf("stderr does not say %q: %s", say, errOut)
		}
	}
}

// What reconnecting cannot fix ends the command with the reason.
func TestEventsTailStopsWhenRefused(t *testing.T) {
	tests := []struct {
		name string
		ev   *scriptedEvents
		want string
	}{
		{"bad credentials", &scriptedEvents{status: http.StatusForbidden}, "GET /v1/events: refused (403 Forbidden)"},
		{"the API's message", &scriptedEvents{status: http.StatusBadRequest, body: `{"error":{"code":"invalid_request","message":"types: unknown event type \"call.exploded\""}}`},
			`GET /v1/events: types: unknown event type "call.exploded" (400 invalid_request) [request req-42]`},
		{"scope missing", &scriptedEvents{status: http.StatusForbidden, body: `{"error":{"code":"forbidden","message":"this API key lacks the events:read scope"}}`},
			`GET /v1/events: this API key lacks the events:read scope (403 forbidden)`},
		{"policy close", &scriptedEvents{scripts: []streamScript{{code: websocket.StatusPolicyViolation, close: "API key revoked"}}}, "API key revoked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.ev)
			defer srv.Close()
			_, _, err := runTail(t, srv, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), `{"error"`) {
				t.Fatalf("err = %v: the raw envelope", err)
			}
			if n := len(tc.ev.requests()); n > 1 {
				t.Fatalf("%d connections: it retried", n)
			}
		})
	}
}

// A 5xx on connect is worth retrying (a restarting control plane); the
// message says what the server said.
func TestEventsTailRetriesServerErrors(t *testing.T) {
	ev := &scriptedEvents{status: http.StatusServiceUnavailable, body: `{"error":{"code":"unavailable","message":"too many event subscribers"}}`}
	srv := httptest.NewServer(ev)
	defer srv.Close()
	_, errOut, err := runTail(t, srv, nil, "--once")
	if err == nil || !strings.Contains(err.Error(), "too many event subscribers (503 unavailable)") {
		t.Fatalf("err = %v; stderr %s", err, errOut)
	}
	if fatal(err) {
		t.Fatalf("a 503 is fatal: %v", err)
	}
}

func TestEventsTailTable(t *testing.T) {
	ev := &scriptedEvents{scripts: []streamScript{{seqs: []int64{7, 8}, code: websocket.StatusServiceRestart}}}
	srv := httptest.NewServer(ev)
	defer srv.Close()
	out, errOut, err := runTail(t, srv, nil, "--format", "table", "--once")
	if err == nil || !strings.Contains(err.Error(), "server") && !strings.Contains(err.Error(), "1012") {
		t.Fatalf("err = %v; stderr %s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^TIME\s+SEQ\s+PBX\s+EVENT\s+CALL\s+FROM\s+TO\s+STATUS\s+DETAIL$`).MatchString(lines[0]) {
		t.Fatalf("table:\n%s", out)
	}
	for i, seq := range []string{"7", "8"} {
		if !regexp.MustCompile(`^-\s+` + seq + `\s+-\s+call\.started\s+c` + seq + `\s`).MatchString(lines[i+1]) {
			t.Errorf("row %d: %q", i+1, lines[i+1])
		}
	}
	if _, _, err := runTail(t, srv, nil, "--format", "yaml"); err == nil || !strings.Contains(err.Error(), "--format: want json or table") {
		t.Fatalf("--format yaml: %v", err)
	}
}

func TestEventTableRows(t *testing.T) {
	tests := []struct {
		name, event, want string
	}{
		{"started", `{"seq":41,"pbx":"agt_1","type":"call.started","time":"2026-11-24T10:42:07Z","call_id":"sb-1","direction":"originate","from":"150","to":"+375296254070","status":"queued"}`,
			`10:42:07      41  agt_1                 call.started          sb-1                            150             +375296254070     queued       originate`},
		{"answered", `{"seq":42,"type":"call.answered","time":"2026-11-24T10:42:09Z","call_id":"sb-1","answered_by":"102","status":"in-progress"}`,
			`10:42:09      42  -                     call.answered         sb-1                            -               -                 in-progress  answered by 102`},
		{"ended", `{"seq":43,"type":"call.ended","time":"2026-11-24T10:42:20Z","call_id":"sb-1","status":"completed","cause":16,"cause_text":"Normal Clearing","duration_s":13,"billsec_s":11,"hungup_by":"150"}`,
			`10:42:20      43  -                     call.ended            sb-1                            -               -                 completed    16 Normal Clearing, 13s (billed 11s), hung up by 150`},
		{"monitor", `{"seq":44,"type":"call.monitor_started","time":"2026-11-24T10:42:21Z","spy_channel":"Local/151@x;1","target_channel":"PJSIP/150-1"}`,
			`10:42:21      44  -                     call.monitor_started  -                               -               -                 -            Local/151@x;1 on PJSIP/150-1`},
		{"gap", `{"seq":45,"type":"gap","time":"2026-11-24T10:42:22Z","lost":12}`,
			`10:42:22      45  -                     gap                   -                               -               -                 -            12 events lost (the PBX's buffer overflowed)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tab := &eventTable{w: &b, loc: time.UTC, header: true}
			if err := tab.print([]byte(tc.event)); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimRight(b.String(), "\n"); got != tc.want {
				t.Fatalf("row\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	if err := (&eventTable{w: io.Discard}).print([]byte("not json")); !errors.Is(err, errOutput) {
		t.Fatalf("a non-JSON event: %v, want errOutput (not retried)", err)
	}
}
