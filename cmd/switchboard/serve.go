package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/systemd"
)

// envPrefix names the environment variables that set serve's flags,
// e.g. SWITCHBOARD_DB, SWITCHBOARD_LISTEN.
const envPrefix = "SWITCHBOARD"

type serveFlags struct {
	config, listen, db              string
	tlsCert, tlsKey                 string
	jwtSecretFile, jwtPublicKey     string
	logFormat, logLevel, publicURL  string
	memoryLimit                     string
	heartbeat                       int
	lastSeenInterval, statusTimeout time.Duration
	api                             apiFlags
	events                          eventsFlags
}

func (f *serveFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file of `name = value` lines (flag names without --)")
	fs.StringVar(&f.listen, "listen", controlplane.DefaultListen, "address for HTTP(S): the API and agent tunnels")
	fs.StringVar(&f.db, "db", controlplane.DefaultDB, "store: sqlite:PATH or postgres://user:pass@host/db")
	fs.StringVar(&f.tlsCert, "tls-cert-file", "", "serve HTTPS/WSS with this certificate (PEM); omit behind a TLS proxy")
	fs.StringVar(&f.tlsKey, "tls-key-file", "", "private key (PEM) of --tls-cert-file")
	fs.StringVar(&f.jwtSecretFile, "jwt-secret-file", "", "HS256 secret (≥ 32 bytes) that verifies operator JWTs")
	fs.StringVar(&f.jwtPublicKey, "jwt-public-key-file", "", "RS256/EdDSA public keys (PEM) that verify operator JWTs")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.publicURL, "public-url", "", "URL clients and agents use to reach this server (for printed hints)")
	fs.StringVar(&f.memoryLimit, "memory-limit", "", "soft limit on the process's memory, e.g. 900MiB (the Go runtime's GOMEMLIMIT): past it the garbage collector runs more often, holding RSS down under bursts at some CPU cost; empty: none")
	fs.IntVar(&f.heartbeat, "heartbeat-seconds", 15, "how often agents report status")
	fs.DurationVar(&f.statusTimeout, "agent-status-timeout", gateway.DefaultHeartbeat+gateway.DefaultStatusGrace, "drop an agent's session when no status arrived for this long (it must exceed the heartbeat; a vanished PBX is noticed within it)")
	fs.DurationVar(&f.lastSeenInterval, "last-seen-interval", gateway.DefaultLastSeenInterval, "how often a connected PBX's last_seen is written to the store (live in the API; stored for after it disconnects)")
	f.api.register(fs)
	f.events.register(fs)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if err := flagfile.Apply(fs, envPrefix, f.config); err != nil {
		return usagef("%v", err)
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg := controlplane.Config{
		Listen: f.listen, DB: f.db, TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey,
		Version: version, Logger: log, Heartbeat: secondsOf(f.heartbeat), StatusTimeout: f.statusTimeout, LastSeenInterval: f.lastSeenInterval,
	}
	if err := applyMemoryLimit(f.memoryLimit); err != nil {
		return err
	}
	if f.lastSeenInterval <= 0 {
		return usagef("--last-seen-interval must be positive")
	}
	if f.statusTimeout <= secondsOf(f.heartbeat) {
		return usagef("--agent-status-timeout %v must be longer than --heartbeat-seconds %d: agents send their status once a heartbeat", f.statusTimeout, f.heartbeat)
	}
	svc, err := configureAPI(&cfg, f)
	if err != nil {
		return err
	}
	srv, err := controlplane.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	_, _ = systemd.Ready()
	defer systemd.Stopping()
	if iv, ok := systemd.WatchdogInterval(); ok {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = systemd.RunWatchdog(wctx, iv) }()
		defer func() { cancel(); <-done }()
	}
	return serveWithEvents(ctx, srv, ln, svc)
}

// serveWithEvents serves until ctx ends, with the events service's
// webhook worker and retention running beside the server. Deliveries in
// flight when it stops are retried by the next start (their lease runs
// out): at least once, never lost.
func serveWithEvents(ctx context.Context, srv *controlplane.Server, ln net.Listener, svc *events.Service) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	err := srv.Serve(ctx, ln)
	cancel()
	if rerr := <-ran; err == nil && rerr != nil {
		err = fmt.Errorf("events: %w", rerr)
	}
	return err
}

func secondsOf(n int) time.Duration { return time.Duration(n) * time.Second }
