package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ErrWatchdogMissed is returned by RunWatchdog when no keep-alive reached
// systemd for a whole watchdog interval. By then systemd is about to kill
// the process anyway; returning lets the daemon shut down cleanly instead.
var ErrWatchdogMissed = errors.New("watchdog keep-alive missed for a whole interval")

// WatchdogInterval reports the interval systemd expects keep-alives within
// (WatchdogSec= in the unit, passed as $WATCHDOG_USEC). ok is false when no
// watchdog is configured, the value is malformed, or $WATCHDOG_PID names
// another process (the variables were inherited by a child of the service).
func WatchdogInterval() (time.Duration, bool) {
	return parseWatchdog(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

// parseWatchdog is WatchdogInterval without the environment, for tests and
// fuzzing.
func parseWatchdog(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, false
	}
	// A duration overflows int64 nanoseconds past ~292 years; systemd's
	// "infinity" is never exported, so anything that large is garbage.
	if n > uint64(1<<63-1)/uint64(time.Microsecond) {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	return time.Duration(n) * time.Microsecond, true
}

// RunWatchdog sends WATCHDOG=1 at once and then every interval/2 until ctx
// ends, when it returns nil. Pinging at half the interval is what
// sd_watchdog_enabled(3) recommends: one late or lost datagram does not get
// the service killed. A failed ping is retried at the next tick; only when
// no ping has succeeded for a whole interval does RunWatchdog give up with
// ErrWatchdogMissed (wrapping the last send error).
//
// Typical use in a main, inside the errgroup that owns the daemon:
//
//	if d, ok := systemd.WatchdogInterval(); ok {
//		g.Go(func() error { return systemd.RunWatchdog(ctx, d) })
//	}
func RunWatchdog(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("watchdog interval %v: must be positive", interval)
	}
	period := interval / 2
	if period <= 0 {
		period = interval
	}
	ticker := time.NewTicker(period)
	defer ticker.Stop()

	lastOK := time.Now()
	for {
		pingCtx, cancel := context.WithTimeout(ctx, period)
		_, err := NotifyContext(pingCtx, "WATCHDOG=1")
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			lastOK = time.Now()
		case time.Since(lastOK) >= interval:
			return fmt.Errorf("%w: %w", ErrWatchdogMissed, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}
