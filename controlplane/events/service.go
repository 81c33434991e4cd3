package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// ErrNotAttached: Run was called before Routes gave the Service a store.
var ErrNotAttached = errors.New("events: Run before Routes: the service has no store")

// Service serves the events, webhook and call history routes and runs
// the delivery worker and retention. Build it with New, register it with
// Routes, then Run it until the server stops.
type Service struct {
	cfg     Config
	log     *slog.Logger
	auth    *auth.Authenticator
	tickets *auth.Tickets
	broker  Broker
	client  *http.Client
	wake    chan struct{} // nudges the delivery worker
	running atomic.Bool
	// inheritLogger: Config had no Logger, so Routes takes the server's;
	// inheritObserver likewise for the metrics.
	inheritLogger, inheritObserver bool
}

// New validates cfg and fills defaults. It starts nothing.
func New(cfg Config) (*Service, error) {
	inherit, inheritObserver := cfg.Logger == nil, cfg.Observer == nil
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, wake: make(chan struct{}, 1), inheritLogger: inherit, inheritObserver: inheritObserver}
	s.broker = cfg.Broker
	if s.broker == nil {
		s.broker = NewHub(cfg.MaxSubscribers, cfg.MaxSubscribersPerEnterprise)
	}
	s.tickets = cfg.Tickets
	if s.tickets == nil {
		t, err := auth.NewTickets(auth.TicketConfig{Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		s.tickets = t
	}
	s.client = newWebhookClient(cfg)
	s.log = cfg.Logger.With("component", "events")
	return s, nil
}

// Routes is a controlplane.Config.Routes hook: it takes the server's
// store and logger where Config left them unset, installs the OnEvents
// hook and registers the routes. Chain it after api.Routes.
func (s *Service) Routes(mux *http.ServeMux, srv *controlplane.Server) error {
	if s.cfg.Store == nil {
		s.cfg.Store = srv.Store()
	}
	if s.inheritLogger {
		s.inheritLogger = false
		s.cfg.Logger = srv.Logger()
		s.log = s.cfg.Logger.With("component", "events")
	}
	if s.inheritObserver {
		s.inheritObserver = false
		s.cfg.Observer = srv.Metrics()
	}
	if err := s.attach(); err != nil {
		return err
	}
	srv.SetOnEvents(s.OnEvents)
	s.Register(mux)
	return nil
}

// attach builds what needs the store.
func (s *Service) attach() error {
	if s.cfg.Store == nil {
		return errors.New("events: Store is required")
	}
	if s.auth == nil {
		s.auth = s.cfg.Auth
	}
	if s.auth == nil {
		ac := auth.Config{Keys: storeKeys{s.cfg.Store}, Enterprises: storeKeys{s.cfg.Store}, Logger: s.cfg.Logger}
		if s.cfg.JWT != nil {
			ac.JWT = s.cfg.JWT
		}
		a, err := auth.New(ac)
		if err != nil {
			return err
		}
		s.auth = a
	}
	return nil
}

// Register adds the routes to mux (Routes does it; for embedding).
func (s *Service) Register(mux *http.ServeMux) {
	for _, rt := range s.table() {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
}

// RoutePatterns lists the "METHOD /path" patterns registered, for docs
// and the OpenAPI completeness check.
func (s *Service) RoutePatterns() []string {
	var out []string
	for _, rt := range s.table() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}

// Broker is the service's broker (for metrics and tests).
func (s *Service) Broker() Broker { return s.broker }

// OnEvents is the gateway hook: the batch is stored (with its history and
// outbox rows), so it only wakes subscribers and the delivery worker. It
// never blocks.
func (s *Service) OnEvents(agent store.Agent, stored []store.StoredEvent) {
	if len(stored) == 0 {
		return
	}
	b := Batch{EnterpriseID: agent.EnterpriseID, First: stored[0].Seq, Last: stored[len(stored)-1].Seq, Items: make([]Item, 0, len(stored))}
	for _, se := range stored {
		data, err := encodeEvent(se)
		if err != nil {
			s.log.Error("encode event", "seq", se.Seq, "err", err)
			continue // subscribers read it back from the store (hole fill)
		}
		b.Items = append(b.Items, Item{Seq: se.Seq, AgentID: se.AgentID, Type: se.Event.Type, JSON: data})
	}
	s.broker.Publish(b)
	s.nudge()
}

func (s *Service) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the webhook delivery worker and the retention pruner until ctx
// ends, then waits for deliveries in flight. Call it once, after Routes.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Store == nil {
		return ErrNotAttached
	}
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("events: Run called twice")
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return s.deliverLoop(ctx) })
	eg.Go(func() error { return s.pruneLoop(ctx) })
	err := eg.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// pruneLoop applies retention now and every PruneInterval.
func (s *Service) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		s.Prune(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Prune deletes what retention no longer keeps. Failures are logged and
// retried at the next round.
func (s *Service) Prune(ctx context.Context) {
	now := s.cfg.Now()
	st := s.cfg.Store
	for _, p := range []struct {
		what string
		fn   func(context.Context, time.Time) (int64, error)
		keep time.Duration
	}{
		{"events", st.PruneEvents, s.cfg.EventRetention},
		{"calls", st.PruneCalls, s.cfg.CallRetention},
		{"webhook deliveries", st.PruneDeliveries, s.cfg.DeliveryRetention},
	} {
		n, err := p.fn(ctx, now.Add(-p.keep))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("retention", "what", p.what, "err", err)
		case n > 0:
			s.log.Info("retention pruned", "what", p.what, "rows", n, "older_than", p.keep)
		}
	}
}

// route is one HTTP route of the package.
type route struct {
	method, path string
	// anyOf: the principal must be allowed one of these actions.
	anyOf []auth.Action
	// ticket: ?ticket= is accepted instead of an Authorization header.
	ticket bool
	handle func(w http.ResponseWriter, r *http.Request, p auth.Principal) error
}

func (s *Service) table() []route {
	history := []auth.Action{auth.EventsRead, auth.ChannelsRead}
	return []route{
		{method: "GET", path: "/v1/events", anyOf: []auth.Action{auth.EventsRead}, ticket: true, handle: s.events},
		{method: "POST", path: "/v1/events/ticket", anyOf: []auth.Action{auth.EventsRead}, handle: s.issueTicket},
		{method: "POST", path: "/v1/webhooks", anyOf: []auth.Action{auth.EventsRead}, handle: s.createWebhook},
		{method: "GET", path: "/v1/webhooks", anyOf: []auth.Action{auth.EventsRead}, handle: s.listWebhooks},
		{method: "GET", path: "/v1/webhooks/{id}", anyOf: []auth.Action{auth.EventsRead}, handle: s.getWebhook},
		{method: "DELETE", path: "/v1/webhooks/{id}", anyOf: []auth.Action{auth.EventsRead}, handle: s.deleteWebhook},
		{method: "GET", path: "/v1/webhooks/{id}/deliveries", anyOf: []auth.Action{auth.EventsRead}, handle: s.listDeliveries},
		{method: "GET", path: "/v1/calls", anyOf: history, handle: s.listCalls},
		{method: "GET", path: "/v1/calls/{id}", anyOf: history, handle: s.getCall},
	}
}

// RequestIDHeader carries the request id, as on the api package's routes.
const RequestIDHeader = "X-Request-Id"

// recorder remembers the status for the access log; Unwrap keeps
// Hijack (the WebSocket upgrade) reachable.
type recorder struct {
	http.ResponseWriter
	status int
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap authenticates, authorizes and runs a route, writing its error in
// the v1 envelope, with an access log line and panic recovery.
func (s *Service) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 128 {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		var p auth.Principal
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "route", rt.path, "panic", v, "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, errInternal)
				}
			}
			attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
				slog.Float64("duration_ms", float64(s.cfg.Now().Sub(start).Microseconds())/1000), slog.String("request_id", id)}
			if p.ID != "" {
				attrs = append(attrs, slog.String("credential", p.CredentialID()))
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
		}()
		var err error
		p, err = s.authenticate(r, rt.ticket)
		if err == nil {
			err = allowsAny(p, rt.anyOf)
		}
		if err == nil {
			if r.Body != nil {
				r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBodyBytes)
			}
			err = rt.handle(rec, r, p)
		}
		if err == nil {
			return
		}
		e, internal := asError(err)
		if internal {
			s.log.Error("request failed", "route", rt.path, "request_id", id, "err", err)
		}
		if rec.status == 0 {
			writeError(rec, e)
		}
	})
}

func allowsAny(p auth.Principal, actions []auth.Action) error {
	var first error
	for _, a := range actions {
		err := p.Allows(a)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// authenticate reads the Authorization header, or, on routes that allow
// it and only without a header, a single-use ?ticket=.
func (s *Service) authenticate(r *http.Request, ticketOK bool) (auth.Principal, error) {
	ticket := r.URL.Query().Get("ticket")
	if ticket != "" {
		if !ticketOK {
			return auth.Principal{}, invalidf("?ticket= is accepted on GET /v1/events only")
		}
		if r.Header.Get("Authorization") != "" {
			return auth.Principal{}, invalidf("send either an Authorization header or ?ticket=, not both")
		}
		p, err := s.tickets.Redeem(ticket)
		if err != nil {
			s.log.Info("ticket refused", "reason", err.Error(), "remote", r.RemoteAddr)
		}
		return p, err
	}
	p, err := s.auth.Authenticate(r, false)
	if err != nil && !errors.Is(err, auth.ErrMissingCredentials) && !errors.Is(err, auth.ErrInvalidCredentials) {
		s.log.Error("authenticate", "err", err)
		return auth.Principal{}, errorf(http.StatusServiceUnavailable, CodeUnavailable, "credentials could not be checked right now")
	}
	return p, err
}

// issueTicket: POST /v1/events/ticket → a single-use ticket for the
// WebSocket, for browsers that cannot set headers on it.
func (s *Service) issueTicket(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	t, err := s.tickets.Issue(p, 0)
	if errors.Is(err, auth.ErrTooManyTickets) {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "too many tickets outstanding; retry shortly")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"ticket": t, "expires_in_s": int(auth.DefaultTicketTTL / time.Second),
		"url": "/v1/events?ticket=" + t})
	return nil
}

// storeCtx bounds a store call of a request.
func (s *Service) storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
}

// agentOf checks that pbx (an agent id) is one of the enterprise's PBXs;
// another enterprise's is reported exactly like an unknown one.
func (s *Service) agentOf(ctx context.Context, enterpriseID int64, pbx string) error {
	if pbx == "" {
		return nil
	}
	ag, err := s.cfg.Store.AgentByID(ctx, pbx)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ag.EnterpriseID != enterpriseID) {
		return notFound("PBX", pbx)
	}
	if err != nil {
		return fmt.Errorf("look up PBX: %w", err)
	}
	return nil
}

// storeKeys adapts the store to auth's lookups (as the api package does).
type storeKeys struct{ s *store.Store }

func (k storeKeys) LookupAPIKey(ctx context.Context, token string) (auth.Key, error) {
	key, err := k.s.APIKeyByToken(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.Key{}, auth.ErrUnknownKey
	case errors.Is(err, store.ErrRevoked):
		return auth.Key{}, auth.ErrRevokedKey
	case errors.Is(err, store.ErrEnterpriseInactive):
		return auth.Key{}, auth.ErrUnknownEnterprise
	case err != nil:
		return auth.Key{}, err
	}
	return auth.Key{ID: key.ID, EnterpriseID: key.EnterpriseID, EnterpriseNumber: key.EnterpriseNumber, Scopes: key.Scopes}, nil
}

func (k storeKeys) EnterpriseIDByNumber(ctx context.Context, number string) (int64, error) {
	e, err := k.s.EnterpriseByNumber(ctx, number)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return 0, auth.ErrUnknownEnterprise
	case err != nil:
		return 0, err
	case !e.Active:
		return 0, fmt.Errorf("enterprise %s inactive: %w", number, auth.ErrUnknownEnterprise)
	}
	return e.ID, nil
}
