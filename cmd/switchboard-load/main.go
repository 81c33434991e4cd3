// Command switchboard-load measures a control plane under a simulated
// fleet of N PBXs (real agents, each with its own fake Asterisk) on one
// machine, over loopback, and prints a Markdown table for the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/switchboard-load/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `switchboard-load — N simulated PBXs against one control plane, measured

Usage:
  switchboard-load [flags]

It provisions N agents in a SQLite store (or the PostgreSQL --db), runs
"switchboard serve" on it as a child process (its RSS and CPU are read from
/proc; with --replicas, that many clustered replicas), starts N real agents,
each logged in to its own fake Asterisk, in worker processes, and measures:
time for all to connect, control plane RSS and CPU, GET /v1/fleet latency,
POST /v1/calls latency at a fixed rate, and the time for all to reconnect
after the control plane is killed and restarted. Linux only; loopback only.

Flags:
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		// Internal modes, run by the tool itself as child processes.
		switch args[0] {
		case "worker":
			if err := load.RunWorker(ctx, stdin, stdout); err != nil {
				fmt.Fprintf(stderr, "switchboard-load worker: %v\n", err)
				return 1
			}
			return 0
		case "controlplane":
			if err := load.RunProfiledControlPlane(ctx, args[1:], stderr); err != nil {
				fmt.Fprintf(stderr, "switchboard-load controlplane: %v\n", err)
				return 1
			}
			return 0
		}
	}
	cfg, err := parse(args, stdout, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchboard-load: %v\n", err)
		return 2
	}
	cfg.Progress = stderr
	cfg.CommandLine = commandLine(args)
	res, err := load.Run(ctx, cfg)
	if res != nil {
		fmt.Fprintln(stdout)
		res.WriteMarkdown(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "switchboard-load: %v\n", err)
		return 1
	}
	return 0
}

func parse(args []string, stdout, stderr io.Writer) (load.Config, error) {
	fs := pflag.NewFlagSet("switchboard-load", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, usage+fs.FlagUsages()) }
	var c load.Config
	fs.IntVarP(&c.Agents, "agents", "n", load.DefaultAgents, "simulated PBXs")
	fs.IntVar(&c.PBXsPerEnterprise, "pbxs-per-enterprise", load.DefaultPBXsPerEnterprise, "PBXs per enterprise (each enterprise has one API key)")
	fs.IntVar(&c.Workers, "workers", -1, "worker processes for the simulated PBXs: -1 picks the fewest the fd limit allows, 0 runs them in this process")
	fs.StringVar(&c.Switchboard, "switchboard", "", "switchboard binary to run as the control plane (default: next to this program, then PATH)")
	fs.StringVar(&c.Profile, "profile", "", "directory: run the control plane as this program's profiled copy (same wiring as serve) and write per-phase CPU and heap profiles and goroutine dumps there")
	fs.StringArrayVar(&c.ControlPlaneFlags, "controlplane-flag", nil, "extra flag for `switchboard serve`, repeatable, e.g. --controlplane-flag=--memory-limit=900MiB")
	fs.StringVar(&c.DB, "db", "", "store of the control plane: empty for a new SQLite file in --dir, or postgres://… naming an EMPTY database")
	fs.StringVar(&c.Dir, "dir", "", "working directory for the store, secrets and logs (default: a temp dir, removed unless --keep)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temp dir")
	fs.IntVar(&c.OriginateRate, "rate", load.DefaultOriginateRate, "POST /v1/calls per second (0 skips)")
	fs.DurationVar(&c.OriginateDuration, "duration", load.DefaultOriginateDuration, "how long to send calls")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", load.DefaultMaxInFlight, "outstanding calls before the generator skips (and counts) a send")
	fs.IntVar(&c.FleetQueries, "fleet-queries", load.DefaultFleetQueries, "GET /v1/fleet samples (0 skips)")
	fs.DurationVar(&c.Settle, "settle", load.DefaultSettle, "idle time with all connected over which CPU and RSS are read")
	fs.Float64Var(&c.CallRate, "call-rate", load.DefaultCallRate, "calls per second started directly on the fake PBXs (events without API traffic)")
	fs.DurationVar(&c.CallHold, "call-hold", load.DefaultCallHold, "how long those calls last")
	fs.BoolVar(&c.Restart, "restart", true, "kill and restart the control plane and time the reconnect")
	fs.StringVar(&c.RestartSignal, "restart-signal", "kill", "kill (SIGKILL, a crash) or term (graceful shutdown)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", load.DefaultConnectTimeout, "give up waiting for all agents to connect")
	fs.DurationVar(&c.ReconnectTimeout, "reconnect-timeout", load.DefaultReconnectTimeout, "give up waiting for all agents to reconnect")
	fs.DurationVar(&c.ReconnectGoal, "reconnect-goal", load.DefaultReconnectGoal, "the goal the reconnect is judged against")
	fs.IntVar(&c.SubscriptionBuffer, "agent-subscription-buffer", load.DefaultSubscriptionBuffer, "agent AMI event buffer (the agent's default, 8192, is allocated up front)")
	fs.IntVar(&c.MaxPendingEvents, "agent-max-pending-events", load.DefaultMaxPendingEvents, "agent bound on unacknowledged events")
	fs.DurationVar(&c.ReconnectMin, "agent-reconnect-min", 0, "agent redial backoff start (0: the agent's default)")
	fs.DurationVar(&c.ReconnectMax, "agent-reconnect-max", 0, "agent redial backoff cap (0: the agent's default)")
	fs.DurationVar(&c.HealthyAfter, "agent-healthy-after", 0, "session age that resets the agent's backoff (0: the agent's default); the run waits this long before the restart")
	fs.IntVar(&c.Replicas, "replicas", 1, "control planes: more than one runs them clustered on the PostgreSQL --db (agents get every replica's URL, requests go to random replicas), kills one and restarts the others one by one")
	fs.IntVar(&c.RollingRate, "rolling-rate", load.DefaultRollingRate, "with --replicas: calls per second of the retrying client during the rolling restart (0 skips the restart)")
	fs.IntVar(&c.Subscribers, "subscribers", load.DefaultSubscribers, "with --replicas: enterprises of the killed replica's PBXs streamed (switchboard events tail) from a surviving replica and checked for lost or duplicated events")
	fs.StringVar(&c.AgentLogLevel, "agent-log-level", load.DefaultAgentLogLevel, "level of the agents' logs (written to agents-N.log in --dir)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// 0 on the command line skips a phase; in load.Config zero means
	// the default and negative skips.
	if c.OriginateRate == 0 {
		c.OriginateRate = -1
	}
	if c.FleetQueries == 0 {
		c.FleetQueries = -1
	}
	if c.RollingRate == 0 {
		c.RollingRate = -1
	}
	return c, nil
}

// commandLine is how the run was started, for the report.
func commandLine(args []string) string {
	q := make([]string, 0, len(args)+1)
	q = append(q, "switchboard-load")
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q = append(q, a)
	}
	return strings.Join(q, " ")
}
