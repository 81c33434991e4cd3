package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// API is the control plane's one HTTP surface: every route, and the one
// middleware chain they all go through. Build it with New and serve
// Handler. It starts no goroutines.
type API struct {
	cfg          Config
	log          *slog.Logger
	accessLogger *slog.Logger
	auth         *auth.Authenticator
	tickets      *auth.Tickets
	limiter      *ratelimit.Limiter
	idem         keyedMutex
	keys         *keyCache
	agents       *agentCache
	fleetRows    fleetRows
	streams      openStreams
	routes       []*route
	mux          *http.ServeMux

	pruneMu   sync.Mutex
	lastPrune time.Time
}

// New validates cfg, fills defaults and builds the API with its routes.
func New(cfg Config) (*API, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.missingDeps(); err != nil {
		return nil, err
	}
	log := slog.New(contextHandler{cfg.Logger.Handler()}).With("component", "api")
	keys := &keyCache{next: storeKeys{cfg.Store}, ttl: cfg.KeyCacheTTL, now: cfg.Now}
	authCfg := auth.Config{
		Keys:        keys,
		Enterprises: storeKeys{cfg.Store},
		Logger:      log,
	}
	if cfg.JWT != nil {
		authCfg.JWT = cfg.JWT
	}
	authn, err := auth.New(authCfg)
	if err != nil {
		return nil, err
	}
	tc := auth.TicketConfig{Now: cfg.Now, MaxPerEnterprise: cfg.MaxTicketsPerEnterprise}
	if cfg.TicketKey != nil {
		tc.Key, tc.Store = cfg.TicketKey, storeTickets{cfg.Store}
	}
	tickets, err := auth.NewTickets(tc)
	if err != nil {
		return nil, err
	}
	lim, err := ratelimit.New(cfg.RateLimit)
	if err != nil {
		return nil, err
	}
	a := &API{
		cfg:          cfg,
		log:          log,
		accessLogger: cfg.Logger.With("component", "http"),
		auth:         authn,
		tickets:      tickets,
		limiter:      lim,
		keys:         keys,
		agents:       &agentCache{st: cfg.Store, ttl: cfg.PBXCacheTTL, now: cfg.Now},
	}
	a.routes = a.table()
	a.mux = http.NewServeMux()
	for _, rt := range a.routes {
		a.mux.Handle(rt.pattern(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(rt, w, r) }))
	}
	return a, nil
}

// Handler serves every route.
func (a *API) Handler() http.Handler { return a.mux }

// style is how a route writes its bodies and errors.
type style uint8

const (
	styleV1      style = iota // {"error":{"code","message"}}
	styleFastAPI              // the originate service: {"detail":"…"}
	styleLaravel              // the hangup endpoint: {"status":false,"message":"…"}, PHP escaping
	stylePlain                // the agent tunnel endpoint: text/plain errors the agent logs as they are
)

type route struct {
	method, path string
	style        style
	// longLived: the request lasts as long as a session (the agent
	// tunnel), so its duration is kept out of the latency histogram and
	// its access line is at debug level (the gateway logs the session).
	longLived bool
	// ticket: a single-use ?ticket= (POST /v1/events/ticket) is accepted
	// instead of an Authorization header, for browsers' WebSockets.
	ticket bool
	// action is what the principal must be allowed; "" means the route
	// needs no credentials.
	action auth.Action
	// audit names the audit action of a mutating route.
	audit string
	// selfAuthorize: the handler calls c.authorize() itself, after it has
	// decoded the body, so a refusal's audit row names the target.
	selfAuthorize bool
	// clientID accepts the legacy ?clientId=<API key>.
	clientID bool
	// authOnly: any authenticated credential may use the route (who am
	// I, the console's sign-in and sign-out); action is empty.
	authOnly bool
	// signIn accepts a console sign-in link (sbl_…) as the bearer token.
	signIn bool
	// internal: a call between replicas; its access line is at debug
	// level (the replica the client called logs the request).
	internal bool
	handle   func(c *call) error
}

func (rt *route) pattern() string {
	if rt.method == "" {
		return rt.path
	}
	return rt.method + " " + rt.path
}

// call is one request in flight.
type call struct {
	api *API
	rt  *route
	w   http.ResponseWriter
	r   *http.Request
	// reqBody is the request's body; nil without one.
	reqBody *body
	id      string
	log     *slog.Logger
	start   time.Time
	// replied is when the reply was flushed (the access log's duration).
	replied time.Time

	principal *auth.Principal
	// session is set when the console's session cookie authenticated
	// the request.
	session    *session
	authorized bool
	audit      *store.AuditEntry
	// intentID is the audit intent written before the request's first
	// call to a PBX (writeIntent); the outcome row replaces it.
	intentID int64
	errCode  string

	// The reply, written by flush.
	status  int
	body    []byte
	headers http.Header
	// wroteOwn: the handler wrote the response itself (a WebSocket
	// upgrade, /metrics); flush writes nothing.
	wroteOwn bool
	// release, if set, gives body's buffer back once it is written.
	release func()
}

func (c *call) ctx() context.Context { return c.r.Context() }

// storeCtx bounds a store operation; it outlives a caller that hung up,
// so an audit row is written even then.
func (c *call) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(c.r.Context()), c.api.cfg.StoreTimeout)
}

// run handles the request, sends the reply, then hands the audit row to
// the store's writer without waiting for it. A request that acts on a PBX
// has already made its intent durable before the PBX was asked
// (writeIntent); its outcome row replaces that intent, so a crash after
// the action leaves a row saying the outcome is unknown, never no row.
// Not waiting lets the caller's next request on the connection start at
// once; the store writes queued rows before it closes.
func (c *call) run() {
	err := c.handle()
	if err != nil {
		c.setError(err)
	}
	c.flush()
	if c.release != nil {
		c.release()
		c.body = nil
	}
	c.finishAudit(err)
}

func (c *call) handle() error {
	rt := c.rt
	if err := connlimit.Admit(c.w, c.r); err != nil {
		// A connection admitted past the general bound, for agent
		// tunnels and health checks only (counted by connlimit).
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error(), RetryAfter: 1}
	}
	if rt.action == "" && !rt.authOnly {
		return rt.handle(c)
	}
	p, err := c.authenticate()
	if err != nil {
		return err
	}
	c.principal = &p
	if rt.audit != "" {
		actor := store.ActorAPIKey
		if p.Kind == auth.KindOperator {
			actor = store.ActorOperator
		}
		c.audit = &store.AuditEntry{
			EnterpriseID: p.EnterpriseID,
			ActorType:    actor,
			ActorID:      p.ID,
			Action:       rt.audit,
			RequestID:    c.id,
			ClientAddr:   clientAddr(c.r),
		}
	}
	if ok, wait := c.api.limiter.Allow(p.CredentialID(), p.EnterpriseID); !ok {
		c.api.cfg.Observer.RateLimited("request")
		secs := int((wait + time.Second - 1) / time.Second)
		return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited,
			Message: fmt.Sprintf("rate limit exceeded; retry in %d s", secs), RetryAfter: secs}
	}
	if !rt.selfAuthorize {
		if err := c.authorize(); err != nil {
			return err
		}
	}
	return rt.handle(c)
}

// authenticate reads the Authorization header (or the legacy ?clientId=
// on routes that take it) or, on routes that allow it and only without a
// header, a single-use ?ticket=, or on v1 routes without a header the web
// console's session cookie (session.go). POST /v1/session also takes a
// console sign-in link as its bearer token.
func (c *call) authenticate() (auth.Principal, error) {
	if link := bearerLink(c.r); link != "" {
		if !c.rt.signIn {
			return auth.Principal{}, errorf(http.StatusUnauthorized, CodeUnauthorized,
				"a console sign-in link is accepted by POST /v1/session only: open it in a browser")
		}
		return c.redeemLink(link)
	}
	ticket := c.r.URL.Query().Get("ticket")
	if cookie := sessionCookie(c.r); cookie != "" && c.rt.style == styleV1 && ticket == "" {
		return c.authenticateSession(cookie)
	}
	if ticket != "" {
		if !c.rt.ticket {
			return auth.Principal{}, invalidf("?ticket= is accepted on GET /v1/events only")
		}
		if c.r.Header.Get("Authorization") != "" {
			return auth.Principal{}, invalidf("send either an Authorization header or ?ticket=, not both")
		}
		ctx, cancel := c.storeCtx()
		defer cancel()
		p, err := c.api.tickets.Redeem(ctx, ticket)
		switch {
		case errors.Is(err, auth.ErrInvalidCredentials):
			c.log.Info("ticket refused", "reason", err.Error())
		case err != nil:
			c.log.Error("redeem ticket", "err", err)
			return auth.Principal{}, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the ticket could not be checked right now")
		}
		return p, err
	}
	p, err := c.api.auth.Authenticate(c.r, c.rt.clientID)
	if err != nil && !errors.Is(err, auth.ErrMissingCredentials) && !errors.Is(err, auth.ErrInvalidCredentials) {
		c.log.Error("authenticate", "err", err)
		return auth.Principal{}, errorf(http.StatusServiceUnavailable, CodeUnavailable, "credentials could not be checked right now")
	}
	return p, err
}

// authorize checks the route's action against the principal.
func (c *call) authorize() error {
	if c.rt.authOnly {
		c.authorized = true
		return nil
	}
	if err := c.principal.Allows(c.rt.action); err != nil {
		return err
	}
	c.authorized = true
	return nil
}

// mustBeAuthorized is checked before any success reply: answering a
// route that needs credentials without authorizing is a handler bug, not
// the caller's, and never answers.
func (c *call) mustBeAuthorized() {
	if (c.rt.action != "" || c.rt.authOnly) && !c.authorized {
		panic("api: route " + c.rt.pattern() + " replied without authorizing")
	}
}

// reply sets the success response (v is encoded in the route's style).
func (c *call) reply(status int, v any) error {
	c.mustBeAuthorized()
	if status == http.StatusNoContent {
		c.status, c.body = status, nil
		return nil
	}
	b, err := encode(c.rt.style, v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	c.status, c.body = status, b
	return nil
}

func (c *call) setHeader(k, v string) {
	if c.headers == nil {
		c.headers = http.Header{}
	}
	c.headers.Set(k, v)
}

// setError turns err into the reply, in the route's style.
func (c *call) setError(err error) {
	e, internal := asAPIError(err)
	if internal {
		c.log.Error("request failed", "route", c.rt.pattern(), "err", err)
	}
	c.errCode = e.Code
	for k, v := range e.header {
		for _, x := range v {
			c.setHeader(k, x)
		}
	}
	if e.RetryAfter > 0 {
		c.setHeader("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status == http.StatusUnauthorized && c.rt.style == styleV1 {
		c.setHeader("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	var v any
	switch {
	case e.body != nil:
		v = e.body
	case c.rt.style == styleFastAPI:
		msg := e.Message
		if e.Status == http.StatusUnauthorized {
			msg = "Invalid clientId"
		}
		v = fastAPIError{Detail: msg}
	case c.rt.style == styleLaravel:
		msg := e.Message
		if e.Status == http.StatusUnauthorized {
			msg = "Unauthenticated."
		}
		v = laravelError{Status: false, Message: msg}
	case c.rt.style == stylePlain:
		c.status, c.body = e.Status, []byte(e.Message+"\n")
		return
	default:
		v = v1Error{Error: v1ErrorBody{Code: e.Code, Message: e.Message}}
	}
	b, mErr := encode(c.rt.style, v)
	if mErr != nil {
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	c.status, c.body = e.Status, b
}

// fail writes an error at once (panic recovery).
func (c *call) fail(err error) {
	c.setError(err)
	c.flush()
}

// serveOwn lets h write the response itself (a WebSocket upgrade,
// /metrics): the chain adds nothing after it.
func (c *call) serveOwn(h http.Handler) {
	c.wroteOwn = true
	c.finishBody()
	h.ServeHTTP(c.w, c.r)
}

func (c *call) flush() {
	if c.wroteOwn {
		c.replied = c.api.cfg.Now()
		return
	}
	c.finishBody()
	h := c.w.Header()
	for k, v := range c.headers {
		h[k] = v
	}
	if c.status == 0 {
		c.status = http.StatusNoContent
	}
	if c.body != nil {
		ct := "application/json"
		if c.rt.style == stylePlain {
			ct = "text/plain; charset=utf-8"
		}
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(c.body)))
	}
	c.w.WriteHeader(c.status)
	if c.body != nil && c.r.Method != http.MethodHead {
		_, _ = c.w.Write(c.body)
	}
	c.replied = c.api.cfg.Now()
	_ = http.NewResponseController(c.w).Flush()
}

type v1Error struct {
	Error v1ErrorBody `json:"error"`
}

type v1ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type fastAPIError struct {
	Detail string `json:"detail"`
}

type laravelError struct {
	Status  bool   `json:"status"`
	Message string `json:"message"`
}

// encode renders v as the route's style writes JSON: compact, ending in a
// newline like every answer of this server (so `curl` leaves the prompt on
// its own line). The FastAPI service's bodies are compact UTF-8; Laravel
// (PHP json_encode, default flags) escapes "/" and every non-ASCII
// character.
func encode(s style, v any) ([]byte, error) {
	b, err := marshalNoHTML(v)
	if err != nil {
		return nil, err
	}
	if s == styleLaravel {
		b = phpEscape(b)
	}
	return append(b, '\n'), nil
}

func marshalNoHTML(v any) ([]byte, error) {
	var buf jsonBuffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := buf.b
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return b, nil
}

type jsonBuffer struct{ b []byte }

func (j *jsonBuffer) Write(p []byte) (int, error) { j.b = append(j.b, p...); return len(p), nil }

// unknownRoute answers paths under /v1/ and /api/ that no route serves:
// 405 when another method of the path exists, else 404.
func (a *API) unknownRoute(c *call) error {
	if a.mux != nil {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch} {
			if m == c.r.Method {
				continue
			}
			probe := c.r.Clone(c.ctx())
			probe.Method = m
			if _, pat := a.mux.Handler(probe); pat != "" && pat != c.rt.path {
				c.setHeader("Allow", m)
				if c.rt.style == styleFastAPI {
					return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method Not Allowed")
				}
				return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed on %s", c.r.Method, c.r.URL.Path)
			}
		}
	}
	if c.rt.style == styleFastAPI {
		return errorf(http.StatusNotFound, CodeNotFound, "Not Found") // FastAPI's own words
	}
	return errorf(http.StatusNotFound, CodeNotFound, "no route %s %s", c.r.Method, c.r.URL.Path)
}
