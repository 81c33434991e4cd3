// Command switchboard-agent runs on a PBX: it logs in to the local Asterisk
// Manager Interface and keeps one outbound tunnel to the Switchboard
// control plane, which it serves typed operations over.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `switchboard-agent — the Switchboard agent on a PBX

Usage:
  switchboard-agent run [flags]      connect to AMI and to the control plane, and serve it
  switchboard-agent check [flags]    same flags: check the config, the AMI login and its
                                     permissions, and the control plane; one line per check
  switchboard-agent version

Flags can also come from the environment (SWITCHBOARD_AGENT_<FLAG>, e.g.
SWITCHBOARD_AGENT_SERVER) or a config file (--config, "name = value" lines).
Run "switchboard-agent run --help" for the flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = runAgent(ctx, rest, stderr)
	case "check":
		err = checkAgent(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "switchboard-agent", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "switchboard-agent: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "switchboard-agent: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "switchboard-agent: %v\n", err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }
