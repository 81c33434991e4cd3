package controlplane

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/metrics"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Defaults of Config.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDB              = "sqlite:switchboard.db"
	DefaultShutdownTimeout = 10 * time.Second
)

// Config is the whole control plane: its own settings, then one nested
// config per part, each with its documented defaults (zero values take
// them). The parts' dependencies on each other (store, registry, logger,
// metrics, the events hook) are wired by New: leave them unset.
type Config struct {
	// Listen is the address of the HTTP(S) listener: the API and the
	// agent tunnels.
	Listen string
	// DB is the store DSN: sqlite:PATH or postgres://…; ignored when Store
	// is set.
	DB string
	// Store, if set, is used instead of opening DB; the caller closes it.
	Store *store.Store
	// TLSCertFile and TLSKeyFile make the server speak HTTPS/WSS itself;
	// leave both empty behind a TLS-terminating reverse proxy.
	TLSCertFile, TLSKeyFile string
	// MetricsListen, when set, serves GET /metrics on this address only
	// (e.g. 127.0.0.1:9464, reachable by Prometheus, not by API clients),
	// and the main listener no longer does.
	MetricsListen string
	// ShutdownTimeout bounds the graceful shutdown of HTTP requests.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers (and the TLS
	// handshake); IdleTimeout closes a keep-alive connection idle this
	// long. Neither applies to agent tunnels and event WebSockets: those
	// are hijacked, and their own keepalives watch them. Defaults
	// DefaultReadHeaderTimeout, DefaultIdleTimeout.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// Conns bounds the listener's connections: in total, per address,
	// with a reserve for agent tunnels and health checks.
	Conns ConnLimits
	// Version is the build version, reported by /api/status and in logs.
	Version string
	Logger  *slog.Logger

	// Gateway: agent tunnels (heartbeat, status timeout, last seen).
	Gateway gateway.Config
	// API: the HTTP surface (JWT, rate limits, AMI timeout, body limit,
	// caches).
	API api.Config
	// Events: the event stream, webhooks and retention.
	Events events.Config
	// Cluster: several replicas on one PostgreSQL (the cluster secret,
	// this replica's URL, heartbeats). Without a secret this replica runs
	// alone, and refuses to start beside another live one. New wires its
	// store, registry, logger and hub; its URL defaults to ReplicaURL of
	// Listen.
	Cluster cluster.Config
}

// Validate says what is wrong with the configuration, before anything is
// opened or written.
func (c Config) Validate() error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("the TLS certificate and key files go together"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ShutdownTimeout", c.ShutdownTimeout}, {"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if _, err := c.Conns.connlimit(openFilesLimit()); err != nil {
		errs = append(errs, err)
	}
	for _, addr := range []string{c.Listen, c.MetricsListen} {
		if addr != "" {
			if err := checkListen(addr); err != nil {
				errs = append(errs, err)
			}
		}
	}
	clc := c.Cluster
	clc.URL = c.replicaURL()
	for _, err := range []error{c.Gateway.Validate(), c.API.Validate(), c.Events.Validate(), clc.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	return nil
}

// checkListen refuses an address net.Listen could never use.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: want host:port, e.g. 127.0.0.1:8080 or :8443", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("listen address %q: bad port %q", addr, port)
		}
	}
	return nil
}

func (c *Config) fill() {
	c.Listen = cmp.Or(c.Listen, DefaultListen)
	c.DB = cmp.Or(c.DB, DefaultDB)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Version = cmp.Or(c.Version, "dev")
}

// replicaURL is Cluster.URL, else the one derived from Listen.
func (c Config) replicaURL() string {
	return cmp.Or(c.Cluster.URL, ReplicaURL(cmp.Or(c.Listen, DefaultListen), c.TLSCertFile != ""))
}

// Server is an assembled control plane.
type Server struct {
	cfg        Config
	log        *slog.Logger
	store      *store.Store
	ownsStore  bool
	registry   *fleet.Registry
	metrics    *metrics.Metrics
	gateway    *gateway.Gateway
	events     *events.Service
	api        *api.API
	conns      *connlimit.Limiter
	cluster    *cluster.Cluster
	registered bool
	ran        bool
}

// New validates cfg, opens the store (applying migrations) and builds
// every part from cfg: the registry of connected agents, the gateway, the
// events service and the HTTP API. It does not listen or start workers;
// Serve does.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store}
	if s.store == nil {
		st, err := store.Open(ctx, cfg.DB, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.store, s.ownsStore = st, true
	}
	if err := s.assemble(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// assemble builds the parts in dependency order; each gets the others
// through its Config, once.
func (s *Server) assemble() error {
	s.registry = fleet.NewRegistry(s.log)
	s.metrics = metrics.New(s.registry.Len)
	cc, err := s.cfg.Conns.connlimit(openFilesLimit())
	if err != nil {
		return fmt.Errorf("controlplane: %w", err)
	}
	cc.Observer = s.metrics
	if s.conns, err = connlimit.New(cc); err != nil {
		return err
	}
	s.metrics.Connections(cc.MaxConns, func() (general, reserve, tunnels int) {
		st := s.conns.Stats()
		return st.General, st.Reserve, st.Tunnels
	})

	if err := s.assembleCluster(); err != nil {
		return err
	}
	clustered := s.cluster.Clustered()

	ec := s.cfg.Events
	ec.Store, ec.Logger, ec.Observer = s.store, s.log, s.metrics
	if clustered {
		ec.Broker = s.cluster.Broker()
	}
	ev, err := events.New(ec)
	if err != nil {
		return err
	}
	s.events = ev

	gc := s.cfg.Gateway
	gc.Store, gc.Registry, gc.Logger, gc.Observer, gc.OnEvents = s.store, s.registry, s.log, s.metrics, ev.OnEvents
	gc.Version = s.cfg.Version // told to agents in Welcome
	if clustered {
		gc.Ownership, gc.Replica = s.cluster, s.cluster.Name()
	}
	gw, err := gateway.New(gc)
	if err != nil {
		return err
	}
	s.gateway = gw

	ac := s.cfg.API
	ac.Store, ac.Directory, ac.Caller = s.store, s.registry, s.metrics.Caller(s.registry)
	ac.Events, ac.Agents, ac.Observer, ac.StoreFailing = ev, gw, s.metrics, gw.StoreFailing
	if clustered {
		ac.Directory, ac.Caller = s.cluster, s.metrics.Caller(s.cluster)
		ac.Cluster, ac.TicketKey, ac.RateLimit.Share = s.cluster, s.cluster.TicketKey(), s.cluster.Share
	}
	if s.cfg.MetricsListen == "" {
		ac.Metrics = s.metrics.Handler()
	}
	ac.Logger, ac.Version = s.log, s.cfg.Version
	a, err := api.New(ac)
	if err != nil {
		return err
	}
	s.api = a
	return nil
}

// assembleCluster builds this replica's part of the cluster (alone
// without a secret: its heartbeat row only).
func (s *Server) assembleCluster() error {
	cc := s.cfg.Cluster
	cc.Store, cc.Registry, cc.Logger, cc.Version = s.store, s.registry, s.log, s.cfg.Version
	cc.URL = s.cfg.replicaURL()
	if cc.Clustered() {
		ec := s.cfg.Events
		cc.Hub = events.NewHub(cmp.Or(ec.MaxSubscribers, events.DefaultMaxSubscribers),
			cmp.Or(ec.MaxSubscribersPerEnterprise, events.DefaultMaxSubscribersPerEnterprise))
		cc.Observer = s.metrics.Cluster(func() int { return s.cluster.Share() })
	}
	cl, err := cluster.New(cc)
	if err != nil {
		return err
	}
	s.cluster = cl
	return nil
}

// ReplicaURL is the URL other replicas call this one at, derived from a
// listen address that names a host ("" for one that does not: 0.0.0.0,
// ::, or no host, or port 0).
func ReplicaURL(listen string, tls bool) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" || port == "" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return ""
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Register records this replica's heartbeat row, or refuses to start it
// beside a live replica it may not run with (the error names that replica
// and the flags to add). Serve calls it unless it was called before (by
// a main that tells its service manager it is ready only then).
func (s *Server) Register(ctx context.Context) error {
	if s.registered {
		return nil
	}
	if err := s.cluster.Register(ctx); err != nil {
		return err
	}
	s.registered = true
	return nil
}

// Cluster is this replica's part in the cluster.
func (s *Server) Cluster() *cluster.Cluster { return s.cluster }

// Store is the server's store.
func (s *Server) Store() *store.Store { return s.store }

// Registry is the set of agents connected to this server.
func (s *Server) Registry() *fleet.Registry { return s.registry }

// Events is the server's events service.
func (s *Server) Events() *events.Service { return s.events }

// Handler serves every route of the server (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.api.Handler() }

// Listen opens the configured listener.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// Run listens and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln, with the events workers (webhook delivery,
// retention) beside it, until ctx ends; then it shuts down gracefully:
// agent tunnels are closed (agents redial the next server), in-flight HTTP
// requests get ShutdownTimeout to finish, and webhook deliveries in flight
// are left to their lease (the next start retries them: at least once).
// Call it once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.ran {
		return errors.New("controlplane: Serve called twice")
	}
	s.ran = true
	httpSrv := &http.Server{
		Handler:           s.api.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ConnState:         s.conns.ConnState,
		ConnContext:       s.conns.ConnContext,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Under TLS, so a connection is counted from its first byte.
	ln = s.conns.Listener(ln)
	scheme := "http"
	if s.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		httpSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, httpSrv.TLSConfig)
		scheme = "https"
	}
	if err := s.Register(ctx); err != nil {
		ln.Close()
		return err
	}
	cc := s.conns.Config()
	s.log.Info("control plane listening", "url", scheme+"://"+ln.Addr().String(), "store", s.store.Dialect(), "version", s.cfg.Version,
		"max_connections", cc.MaxConns, "reserved_connections", cc.Reserve, "max_connections_per_ip", cc.MaxPerIP)
	g, gctx := errgroup.WithContext(ctx)
	metricsSrv, err := s.serveMetrics(g)
	if err != nil {
		ln.Close()
		return err
	}
	g.Go(func() error { return s.watchRevocations(gctx) })
	g.Go(func() error { return s.cluster.Run(gctx) })
	g.Go(func() error {
		if err := s.events.Run(gctx); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		return nil
	})
	g.Go(func() error { s.sweepIntents(gctx); return nil })
	g.Go(func() error {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		if metricsSrv != nil {
			metricsSrv.Close()
		}
		s.shutdown(httpSrv)
		return nil
	})
	return g.Wait()
}

// Audit intents older than intentGrace are from a control plane that
// stopped between asking a PBX and storing the answer: no request lives
// that long (the AMI timeout is at most a minute). They are looked for
// every intentSweep.
const (
	intentGrace = 5 * time.Minute
	intentSweep = time.Minute
)

// deregisterTimeout bounds deleting this replica's row on a graceful stop.
const deregisterTimeout = 5 * time.Second

// sweepIntents turns audit intents left by a stopped control plane into
// rows that say the outcome is unknown, now and every intentSweep.
func (s *Server) sweepIntents(ctx context.Context) {
	t := time.NewTicker(intentSweep)
	defer t.Stop()
	for {
		n, err := s.store.ResolveAuditIntents(ctx, time.Now().Add(-intentGrace))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("audit intents", "err", err)
		case n > 0:
			s.log.Warn("audit rows written for actions whose outcome was never stored (the control plane stopped during them)", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveMetrics starts the metrics listener of MetricsListen, if any.
func (s *Server) serveMetrics(g *errgroup.Group) (*http.Server, error) {
	if s.cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, IdleTimeout: s.cfg.IdleTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	})
	return srv, nil
}

// shutdown closes the listener first, so agents whose tunnels end next
// find the port closed and back off rather than redial into a process
// that is stopping (10,000 of them at once); then every tunnel. Tunnels
// are hijacked connections: Shutdown does not wait for them.
func (s *Server) shutdown(httpSrv *http.Server) {
	s.log.Info("control plane shutting down", "agents", s.registry.Len())
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		httpSrv.Close()
	}
	s.gateway.Close()
	// Its agents are gone (they redial through the load balancer): the
	// row that says they were here goes too.
	dctx, dcancel := context.WithTimeout(context.Background(), deregisterTimeout)
	if err := s.cluster.Deregister(dctx); err != nil {
		s.log.Warn("the other replicas count this one dead after its missed heartbeats", "err", err)
	}
	dcancel()
	s.log.Info("control plane stopped", "took", time.Since(start).Round(time.Millisecond))
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
