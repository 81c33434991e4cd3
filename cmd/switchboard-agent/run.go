package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/agent/metrics"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/systemd"
)

const envPrefix = "SWITCHBOARD_AGENT"

type flags struct {
	config, server, tokenFile, caFile string
	ami, amiUser, amiSecretFile       string
	context, logFormat, logLevel      string
	metricsListen                     string
	maxOriginates, maxRequests        int
	ops                               string
	eventLimits                       eventLimitFlags
	callCentre                        callCentreFlags
	callControl                       callControlFlags
}

// eventLimitFlags bound what the agent sends up the events stream (see
// README "Limits and abuse").
type eventLimitFlags struct {
	fieldBytes, batchBytes, inFlightBytes int
}

func (f *eventLimitFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.fieldBytes, "max-event-field-bytes", agent.DefaultMaxEventFieldBytes, "longest text field of an event (caller id, channel…); longer values are cut and named in the event's truncated list")
	fs.IntVar(&f.batchBytes, "max-event-batch-bytes", agent.DefaultMaxBatchBytes, "largest event frame sent to the control plane; one event may take a quarter of it, a larger one is replaced by a gap event naming it")
	fs.IntVar(&f.inFlightBytes, "max-events-in-flight-bytes", agent.DefaultMaxInFlightBytes, "event frames sent and not yet acknowledged; past it the agent waits for acks (at most 256 KiB less a quarter batch: the tunnel's stream window)")
}

func (f eventLimitFlags) apply(cfg *agent.Config) {
	cfg.MaxEventFieldBytes, cfg.MaxBatchBytes, cfg.MaxInFlightBytes = f.fieldBytes, f.batchBytes, f.inFlightBytes
}

func (f *flags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "config file of `name = value` lines (flag names without --)")
	fs.StringVar(&f.server, "server", "", "control plane tunnel URL, e.g. wss://cp.example.com/agent/v1/connect (required)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding this PBX's agent token (required)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CAs that sign the control plane's certificate (default: system roots)")
	fs.StringVar(&f.ami, "ami", "127.0.0.1:5038", "Asterisk Manager Interface address")
	fs.StringVar(&f.amiUser, "ami-user", "switchboard", "AMI username (manager.conf)")
	fs.StringVar(&f.amiSecretFile, "ami-secret-file", "", "file holding the AMI user's secret (required)")
	fs.StringVar(&f.context, "context", agent.DefaultContext, "dialplan context of Local/<ext>@<context> channels")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9464 (empty: off)")
	fs.IntVar(&f.maxOriginates, "max-concurrent-originates", ops.DefaultMaxConcurrentOriginates, "calls being set up on this PBX at once, until Asterisk answers or fails them; more are refused (429 pbx_busy at the API)")
	fs.IntVar(&f.maxRequests, "max-concurrent-requests", agent.DefaultMaxRequests, "requests from the control plane running at once; more are refused at once (429 pbx_busy)")
	fs.StringVar(&f.ops, "ops", "all", "operations this agent runs, comma-separated, or all: "+strings.Join(protocol.Ops, ", ")+"; others are refused with op_disabled")
	f.eventLimits.register(fs)
	f.callCentre.register(fs)
	f.callControl.register(fs)
}

// load parses flags, environment and config file into an agent.Config.
// Secrets come from files so they never appear in `ps`.
func load(args []string, stderr io.Writer) (agent.Config, *slog.Logger, error) {
	cfg, log, _, err := loadAll(args, stderr)
	return cfg, log, err
}

// loadAll is load that also returns the flags not part of agent.Config.
func loadAll(args []string, stderr io.Writer) (agent.Config, *slog.Logger, flags, error) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, nil, flags{}, usagef("%v", err)
	}
	if err := flagfile.Apply(fs, envPrefix, f.config); err != nil {
		return agent.Config{}, nil, flags{}, usagef("%v", err)
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return agent.Config{}, nil, flags{}, err
	}
	var missing []string
	for name, v := range map[string]string{"server": f.server, "token-file": f.tokenFile, "ami-secret-file": f.amiSecretFile} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return agent.Config{}, nil, flags{}, usagef("missing %s (flags, %s_* environment or --config)", strings.Join(missing, ", "), envPrefix)
	}
	token, err := readSecret(f.tokenFile, "token")
	if err != nil {
		return agent.Config{}, nil, flags{}, err
	}
	secret, err := readSecret(f.amiSecretFile, "AMI secret")
	if err != nil {
		return agent.Config{}, nil, flags{}, err
	}
	if f.maxOriginates <= 0 || f.maxRequests <= 0 {
		return agent.Config{}, nil, flags{}, usagef("--max-concurrent-originates and --max-concurrent-requests must be positive")
	}
	cfg := agent.Config{
		Server:                  f.server,
		Token:                   token,
		CAFile:                  f.caFile,
		AMI:                     ami.Config{Addr: f.ami, Username: f.amiUser, Secret: secret},
		Context:                 f.context,
		MaxConcurrentOriginates: f.maxOriginates,
		MaxConcurrentRequests:   f.maxRequests,
		Logger:                  log,
		Version:                 version,
	}
	f.eventLimits.apply(&cfg)
	f.callCentre.apply(&cfg)
	f.callControl.apply(&cfg)
	if f.ops != "all" {
		for _, op := range strings.Split(f.ops, ",") {
			if op = strings.TrimSpace(op); op != "" {
				cfg.Ops = append(cfg.Ops, op)
			}
		}
		if len(cfg.Ops) == 0 {
			return agent.Config{}, nil, flags{}, usagef("--ops names no operation: name some, or all")
		}
	}
	if err := cfg.Validate(); err != nil {
		return agent.Config{}, nil, flags{}, usagef("%v", err)
	}
	return cfg, log, f, nil
}

func runAgent(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, log, f, err := loadAll(args, stderr)
	if err != nil {
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if f.metricsListen != "" {
		stop, err := serveMetrics(ctx, f.metricsListen, a, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	_, _ = systemd.Ready()
	defer systemd.Stopping()
	if iv, ok := systemd.WatchdogInterval(); ok {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = systemd.RunWatchdog(wctx, iv) }()
		defer func() { cancel(); <-done }()
	}
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// readSecret reads a one-line secret file; one trailing newline (as
// editors and `echo` write) is dropped, anything else is kept verbatim.
func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s file: %w", what, err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	return s, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, usagef("--log-format %q: want json or text", format)
	}
}

// serveMetrics serves the agent's Prometheus metrics until stop is called.
func serveMetrics(ctx context.Context, addr string, a *agent.Agent, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(a))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() { srv.Close(); <-done }, nil
}
