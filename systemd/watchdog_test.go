package systemd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestParseWatchdog(t *testing.T) {
	const self = 4242
	tests := []struct {
		name   string
		usec   string
		pid    string
		want   time.Duration
		wantOK bool
	}{
		{"30s for us", "30000000", "4242", 30 * time.Second, true},
		{"no pid given", "500000", "", 500 * time.Millisecond, true},
		{"unset", "", "", 0, false},
		{"meant for another process", "30000000", "1", 0, false},
		{"malformed pid", "30000000", "me", 0, false},
		{"zero", "0", "4242", 0, false},
		{"negative", "-5", "4242", 0, false},
		{"not a number", "30s", "4242", 0, false},
		{"overflows a Duration", "18446744073709551615", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseWatchdog(tc.usec, tc.pid, self)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("parseWatchdog(%q, %q) = %v, %v; want %v, %v", tc.usec, tc.pid, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestWatchdogIntervalFromEnvironment(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d, ok := WatchdogInterval(); !ok || d != 30*time.Second {
		t.Fatalf("got %v, %v; want 30s, true", d, ok)
	}
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d, ok := WatchdogInterval(); ok {
		t.Fatalf("got %v, true for another PID; want false", d)
	}
}

func FuzzParseWatchdog(f *testing.F) {
	f.Add("30000000", "1")
	f.Add("", "")
	f.Add("9223372036854775807", "")
	f.Add("-1", "x")
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, ok := parseWatchdog(usec, pid, 1)
		if ok && d <= 0 {
			t.Fatalf("parseWatchdog(%q, %q) = %v, true: enabled watchdog must be positive", usec, pid, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseWatchdog(%q, %q) = %v, false: disabled must be zero", usec, pid, d)
		}
	})
}

func TestRunWatchdogPingsUntilCancelled(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(map[bool]string{false: "path", true: "abstract"}[abstract], func(t *testing.T) {
			conn := listen(t, abstract)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- RunWatchdog(ctx, 40*time.Millisecond) }()

			// The first ping is immediate, the rest follow at half the
			// interval; three prove it is a loop, not a one-shot.
			for i := 0; i < 3; i++ {
				if got := receive(t, conn); got != "WATCHDOG=1" {
					t.Fatalf("ping %d: %q, want WATCHDOG=1", i, got)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("RunWatchdog returned %v after cancel, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("RunWatchdog did not return after its context was cancelled")
			}
		})
	}
}

func TestRunWatchdogGivesUpWhenNothingArrives(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := RunWatchdog(ctx, 20*time.Millisecond)
	if !errors.Is(err, ErrWatchdogMissed) {
		t.Fatalf("got %v, want ErrWatchdogMissed", err)
	}
	if ctx.Err() != nil {
		t.Fatal("RunWatchdog only returned because the test's deadline passed")
	}
}

func TestRunWatchdogRejectsBadInterval(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if err := RunWatchdog(context.Background(), d); err == nil {
			t.Fatalf("RunWatchdog(%v) = nil, want an error", d)
		}
	}
}
