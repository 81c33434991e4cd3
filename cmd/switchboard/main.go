// Command switchboard is the Switchboard control plane (`switchboard serve`),
// its one-command demo (`switchboard demo`), its admin commands and an
// operator's command line over the HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own args and
// output streams. Exit status: 0 done, 1 failed, 2 a mistake on the
// command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, &env{stdout: stdout, stderr: stderr, now: time.Now}, args)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsageShown):
		return 2
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "switchboard: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "switchboard: %v\n", err)
		return 1
	}
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
