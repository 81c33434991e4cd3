// Command switchboard is the Switchboard control plane (`switchboard serve`),
// its one-command demo (`switchboard demo`) and its admin commands.
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

const usage = `switchboard — control a fleet of Asterisk PBXs from one API

Usage:
  switchboard serve [flags]                      run the control plane
  switchboard demo [flags]                       run everything in one process, with a simulated PBX
  switchboard enterprise create --number N --name NAME
  switchboard enterprise list
  switchboard agent create --enterprise N --name NAME [--context inoffice]
  switchboard agent revoke ID
  switchboard agent list [--enterprise N]
  switchboard apikey create --enterprise N [--name NAME] [--scopes a,b]
  switchboard apikey revoke ID
  switchboard apikey list --enterprise N
  switchboard jwt mint --secret-file F --sub ID --roles r1,r2 [--enterprise N] [--ttl 1h]
  switchboard fleet status [--server URL] [--token-file F] [--json] [--enterprise N]
                           [--online|--offline] [--ami up|down|unknown] [--revoked]
  switchboard events tail [--server URL] [--token-file F] [--after SEQ] [--pbx ID] [--types a,b] [--once]
  switchboard version

Admin commands take --db (same default as serve) and --json.
Run "switchboard COMMAND --help" for a command's flags.
`

// run is main without the process: tests call it with their own args and
// output streams.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(ctx, rest, stdout, stderr)
	case "demo":
		err = demo(ctx, rest, stdout, stderr)
	case "enterprise", "agent", "apikey":
		err = admin(ctx, cmd, rest, stdout)
	case "jwt":
		err = jwtCmd(rest, stdout)
	case "fleet":
		err = fleetCmd(ctx, rest, stdout, time.Now)
	case "events":
		err = eventsCmd(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "switchboard", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
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
