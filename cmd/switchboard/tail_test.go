package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	status  int // non-zero: refuse every request with it
}

func (s *scriptedEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer sbk_test" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if s.status != 0 {
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
		{"bad credentials", &scriptedEvents{status: http.StatusForbidden}, "403 Forbidden"},
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
			if n := len(tc.ev.requests()); n > 1 {
				t.Fatalf("%d connections: it retried", n)
			}
		})
	}
}
