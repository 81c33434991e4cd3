package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/metrics"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Defaults of Config.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultDB                = "sqlite:switchboard.db"
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Config of a Server. Zero values take the defaults above.
type Config struct {
	// Listen is the address of the HTTP(S) listener.
	Listen string
	// DB is the store DSN: sqlite:PATH or postgres://…; ignored when Store
	// is set.
	DB string
	// Store, if set, is used instead of opening DB; the caller closes it.
	Store *store.Store
	// TLSCertFile and TLSKeyFile make the server speak HTTPS/WSS itself;
	// leave both empty behind a TLS-terminating reverse proxy.
	TLSCertFile, TLSKeyFile string
	// Heartbeat is how often agents report status.
	Heartbeat time.Duration
	// StatusTimeout drops a session whose agent sent no status for this
	// long (gateway.Config.StatusTimeout; 0: Heartbeat + 10 s).
	StatusTimeout time.Duration
	// LastSeenInterval is how often a connected agent's last_seen is
	// written to the store (gateway.Config.LastSeenInterval).
	LastSeenInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown of HTTP requests.
	ShutdownTimeout time.Duration
	// Version is reported by /api/status and in logs.
	Version string
	Logger  *slog.Logger
	// Routes, if set, registers further routes (the HTTP API) on the mux.
	Routes func(mux *http.ServeMux, s *Server) error
}

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("controlplane: --tls-cert-file and --tls-key-file go together")
	}
	if c.Heartbeat < 0 || c.StatusTimeout < 0 || c.ShutdownTimeout < 0 || c.LastSeenInterval < 0 {
		return errors.New("controlplane: durations must not be negative")
	}
	return nil
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DB == "" {
		c.DB = DefaultDB
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// Server is a running control plane.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     *store.Store
	ownsStore bool
	registry  *fleet.Registry
	gateway   *gateway.Gateway
	metrics   *metrics.Metrics
	mux       *http.ServeMux
	handler   http.Handler
	httpSrv   *http.Server
	started   time.Time
}

// New opens the store (applying migrations) and assembles the server. It
// does not listen yet.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, started: time.Now()}
	if s.store == nil {
		st, err := store.Open(ctx, cfg.DB, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.store, s.ownsStore = st, true
	}
	s.registry = fleet.NewRegistry(cfg.Logger)
	s.metrics = metrics.New(s.registry.Len)
	gw, err := gateway.New(gateway.Config{Store: s.store, Registry: s.registry, Logger: cfg.Logger, Heartbeat: cfg.Heartbeat,
		StatusTimeout: cfg.StatusTimeout, LastSeenInterval: cfg.LastSeenInterval, Observer: s.metrics})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.gateway = gw
	s.mux = http.NewServeMux()
	s.mux.Handle("GET "+protocol.ConnectPath, gw)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	s.handler = s.metrics.Middleware(s.mux, "GET "+protocol.ConnectPath)
	if cfg.Routes != nil {
		if err := cfg.Routes(s.mux, s); err != nil {
			s.Close()
			return nil, fmt.Errorf("register routes: %w", err)
		}
	}
	return s, nil
}

// Store is the server's store.
func (s *Server) Store() *store.Store { return s.store }

// Registry is the set of agents connected to this server.
func (s *Server) Registry() *fleet.Registry { return s.registry }

// Caller sends requests to agents, instrumented; the API uses it.
func (s *Server) Caller() fleet.Caller { return s.metrics.Caller(s.registry) }

// Metrics are the server's Prometheus collectors (served at /metrics).
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Version is the build version the server reports.
func (s *Server) Version() string { return s.cfg.Version }

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// SetOnEvents installs the hook called with each stored batch of agent
// events (the events hub).
func (s *Server) SetOnEvents(fn func(store.Agent, []store.StoredEvent)) { s.gateway.SetOnEvents(fn) }

// Listen opens the configured listener.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully: agent
// tunnels are closed (agents redial the next server), in-flight HTTP
// requests get ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if s.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		s.httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, s.httpSrv.TLSConfig)
		scheme = "https"
	}
	s.log.Info("control plane listening", "url", scheme+"://"+ln.Addr().String(), "store", s.store.Dialect(), "version", s.cfg.Version)
	errc := make(chan error, 1)
	go func() { errc <- s.httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("control plane shutting down", "agents", s.registry.Len())
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// The listener closes first, so agents whose tunnels end below find
	// the port closed and back off, rather than redial into a process
	// that is stopping (10,000 of them at once). Tunnels are hijacked
	// connections: Shutdown does not wait for them.
	if err := s.httpSrv.Shutdown(sctx); err != nil {
		s.httpSrv.Close()
	}
	s.gateway.Close()
	<-errc
	s.log.Info("control plane stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Close releases what New opened. Call it after Serve returned.
func (s *Server) Close() error {
	if s.gateway != nil {
		s.gateway.Close()
	}
	if s.ownsStore && s.store != nil {
		return s.store.Close()
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readyz is ready when the store answers and every migration this build
// knows is applied.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "store unreachable"})
		return
	}
	n, err := s.store.MigrationsApplied(ctx)
	if err != nil || n != store.MigrationsKnown() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reason": "migrations pending", "applied": n, "known": store.MigrationsKnown()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "migrations": n, "agents_connected": s.registry.Len()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
