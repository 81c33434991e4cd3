package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// DefaultNotifyTimeout bounds one notification when the caller's context has
// no deadline. systemd reads its notify socket promptly; a send that takes
// longer than this means the manager is wedged, and blocking a daemon's
// shutdown path on it would be worse than dropping one message.
const DefaultNotifyTimeout = 2 * time.Second

// ErrUnsupportedSocket is returned when $NOTIFY_SOCKET names a transport
// this package does not speak (systemd ≥ 253 may hand out vsock addresses to
// VMs). It is never returned for the absence of the variable.
var ErrUnsupportedSocket = errors.New("unsupported NOTIFY_SOCKET address")

// ErrInvalidState is returned for a state that would be misread by systemd:
// empty, or containing a newline that would smuggle in another assignment.
var ErrInvalidState = errors.New("invalid notify state")

// Notify sends state (for example "READY=1") to the service manager, bounded
// by DefaultNotifyTimeout. sent is false with a nil error when the process is
// not supervised by systemd ($NOTIFY_SOCKET unset), so callers need no
// special case for running in a terminal or a test.
func Notify(state string) (sent bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultNotifyTimeout)
	defer cancel()
	return NotifyContext(ctx, state)
}

// NotifyContext is Notify bounded by ctx instead of DefaultNotifyTimeout.
func NotifyContext(ctx context.Context, state string) (sent bool, err error) {
	if state == "" {
		return false, fmt.Errorf("%w: empty", ErrInvalidState)
	}
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	// Go's net package maps a leading '@' to the Linux abstract namespace
	// (a leading NUL byte), which is exactly systemd's convention, so both
	// path and abstract sockets go through the same call.
	if name[0] != '/' && name[0] != '@' {
		return false, fmt.Errorf("%w: %q", ErrUnsupportedSocket, name)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unixgram", name)
	if err != nil {
		return false, fmt.Errorf("dial notify socket: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetWriteDeadline(deadline); err != nil {
			return false, fmt.Errorf("set notify deadline: %w", err)
		}
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("send notify state: %w", err)
	}
	return true, nil
}

// Ready tells systemd that start-up is finished (Type=notify units are
// "starting" until then, and units ordered after them wait).
func Ready() (sent bool, err error) { return Notify("READY=1") }

// Stopping tells systemd that a clean shutdown has begun, so that the time
// spent draining connections is reported as "deactivating", not as a hang.
func Stopping() (sent bool, err error) { return Notify("STOPPING=1") }

// Watchdog sends one keep-alive ping for WatchdogSec=.
func Watchdog() (sent bool, err error) { return Notify("WATCHDOG=1") }

// Status sets the free-form one-line status shown by `systemctl status`.
func Status(msg string) (sent bool, err error) {
	if strings.ContainsAny(msg, "\n\x00") {
		return false, fmt.Errorf("%w: status contains a newline or NUL", ErrInvalidState)
	}
	return Notify("STATUS=" + msg)
}
