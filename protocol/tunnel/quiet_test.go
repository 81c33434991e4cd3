package tunnel

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
)

// TestCleanStopLogsNoWarning: the side that ends a session (its context
// cancelled by Ctrl-C or SIGTERM, or Close) logs what yamux says about the
// link it is closing at debug, never as a warning.
func TestCleanStopLogsNoWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(cancel context.CancelFunc, agent *Session)
	}{
		{"context cancelled", func(cancel context.CancelFunc, _ *Session) { cancel() }},
		{"Close", func(_ context.CancelFunc, agent *Session) { _ = agent.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs testio.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ts := startServer(t, serverOpts{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			agent, err := Dial(ctx, DialConfig{URL: ts.wsURL(), Token: goodToken, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			control := ts.nextSession(t)
			// Traffic in flight when the stop comes: a stream being read.
			go func() {
				if st, _, err := control.Accept(context.Background()); err == nil {
					buf := make([]byte, 1)
					_, _ = st.Read(buf)
				}
			}()
			if _, err := agent.Open(ctx, 2); err != nil {
				t.Fatal(err)
			}
			tc.stop(cancel, agent)
			waitDone(t, agent, 5*time.Second)
			waitDone(t, control, 5*time.Second)
			time.Sleep(100 * time.Millisecond) // yamux's loops log after Done
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
					t.Errorf("clean stop logged: %s", line)
				}
			}
			t.Logf("logs:\n%s", logs.String())
		})
	}
}
