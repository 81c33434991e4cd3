package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
)

// configFileUsage is --config of serve: the flag's own text would show its
// value as "name = value" (pflag names a value after the first
// back-quoted word).
const configFileUsage = "read options from `FILE`: one name = value a line, names are the flags without --"

// serverCommands run the control plane. Their flags are parsed by serve
// and demo themselves; here they are only described, for --help,
// completion and man pages.
func serverCommands() []*command {
	return []*command{
		{
			path: "serve", group: groupServer, selfParsed: true,
			summary: "run the control plane",
			about: `Serves the REST and WebSocket API and accepts the agents' tunnels. Every
flag may also be set in the environment (SWITCHBOARD_<FLAG>, e.g.
SWITCHBOARD_DB) or in --config FILE; flags win over the environment, which
wins over the file. The package's file is /etc/switchboard/switchboard.conf.`,
			define: func(fs *pflag.FlagSet) action {
				var f serveFlags
				f.register(fs)
				fs.Lookup("config").Usage = configFileUsage
				completeFiles(fs, "config", "tls-cert-file", "tls-key-file", "jwt-secret-file", "jwt-public-key-file")
				completeWords(fs, "log-format", "text", "json")
				completeWords(fs, "log-level", "debug", "info", "warn", "error")
				return func(ctx context.Context, e *env, args []string) error { return serve(ctx, args, e.stdout, e.stderr) }
			},
		},
		{
			path: "demo", group: groupServer, selfParsed: true,
			summary: "run everything in one process, with a simulated PBX",
			about: `Starts the control plane with a SQLite store in a temp dir, a simulated
Asterisk and a real agent connected to it through the real tunnel, creates
enterprise 0367 with an API key and an operator JWT, and prints commands
that work as printed. The temp dir (store, JWT secret) is deleted on exit
unless --keep.`,
			define: func(fs *pflag.FlagSet) action {
				// The same flags as demo() in demo.go; TestDemoFlagsDescribed
				// fails when the two differ.
				fs.String("listen", controlplane.DefaultListen, "address of the control plane")
				fs.Bool("traffic", true, "simulate background calls on the PBX")
				fs.String("log-level", "warn", "log level: debug, info, warn, error")
				fs.Bool("keep", false, "keep the temp dir (store, secrets) after exit")
				completeWords(fs, "log-level", "debug", "info", "warn", "error")
				return func(ctx context.Context, e *env, args []string) error { return demo(ctx, args, e.stdout, e.stderr) }
			},
		},
	}
}
