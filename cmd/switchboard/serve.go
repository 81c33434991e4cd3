package main

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
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
	metricsListen, metricsTokenFile string
	heartbeat                       int
	lastSeenInterval, statusTimeout time.Duration
	api                             apiFlags
	events                          eventsFlags
	harden                          hardenFlags
	conns                           connFlags
	cluster                         clusterFlags
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
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve GET /metrics on this address only (e.g. 127.0.0.1:9464), not on --listen; empty: on --listen")
	fs.StringVar(&f.metricsTokenFile, "metrics-token-file", "", "require Authorization: Bearer <the file's token> on GET /metrics of --listen")
	fs.IntVar(&f.heartbeat, "heartbeat-seconds", 15, "how often agents report status")
	fs.DurationVar(&f.statusTimeout, "agent-status-timeout", gateway.DefaultHeartbeat+gateway.DefaultStatusGrace, "drop an agent's session when no status arrived for this long (it must exceed the heartbeat; a vanished PBX is noticed within it)")
	fs.DurationVar(&f.lastSeenInterval, "last-seen-interval", gateway.DefaultLastSeenInterval, "how often a connected PBX's last_seen is written to the store (live in the API; stored for after it disconnects)")
	f.api.register(fs)
	f.events.register(fs)
	f.harden.register(fs)
	f.conns.register(fs)
	f.cluster.register(fs)
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
	cfg, err := f.controlPlane()
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log
	if err := applyMemoryLimit(f.memoryLimit); err != nil {
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
	// Ready only once this replica may run (not beside a live replica it
	// may not run with).
	if err := srv.Register(ctx); err != nil {
		ln.Close()
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
	return srv.Serve(ctx, ln)
}

// controlPlane is the whole control plane's configuration from the flags,
// checked before anything is opened: a bad flag never leaves a database
// created or migrated behind.
func (f serveFlags) controlPlane() (controlplane.Config, error) {
	cfg := controlplane.Config{
		Listen: f.listen, DB: f.db, TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey, Version: version, MetricsListen: f.metricsListen,
		Gateway: gateway.Config{Heartbeat: secondsOf(f.heartbeat), StatusTimeout: f.statusTimeout, LastSeenInterval: f.lastSeenInterval},
	}
	if f.heartbeat <= 0 {
		return cfg, usagef("--heartbeat-seconds must be positive")
	}
	if f.lastSeenInterval <= 0 {
		return cfg, usagef("--last-seen-interval must be positive")
	}
	if f.statusTimeout <= secondsOf(f.heartbeat) {
		return cfg, usagef("--agent-status-timeout %v must be longer than --heartbeat-seconds %d: agents send their status once a heartbeat", f.statusTimeout, f.heartbeat)
	}
	var err error
	if cfg.API, err = apiConfig(f); err != nil {
		return cfg, err
	}
	if cfg.Events, err = eventsConfig(f.events); err != nil {
		return cfg, err
	}
	if err := f.harden.apply(&cfg); err != nil {
		return cfg, err
	}
	if err := f.conns.apply(&cfg); err != nil {
		return cfg, err
	}
	if err := f.cluster.apply(&cfg); err != nil {
		return cfg, err
	}
	if f.metricsTokenFile != "" {
		b, err := os.ReadFile(f.metricsTokenFile)
		if err != nil {
			return cfg, usagef("--metrics-token-file: %v", err)
		}
		if cfg.API.MetricsToken = strings.TrimSpace(string(b)); len(cfg.API.MetricsToken) < 16 {
			return cfg, usagef("--metrics-token-file: the token must be at least 16 characters")
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("%v", err)
	}
	return cfg, nil
}

func secondsOf(n int) time.Duration { return time.Duration(n) * time.Second }
