package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Defaults of Config.
const (
	// DefaultAMITimeout bounds one request to a PBX, tunnel and AMI round
	// trip included: the Laravel service's 4 s. Past it the API answers
	// 504 ami_timeout.
	DefaultAMITimeout = 4 * time.Second
	// DefaultMaxBodyBytes bounds a request body. The largest legitimate
	// one (an originate with 32 variables of 256 bytes) is under 12 KiB.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultStoreTimeout bounds one store operation on the request path
	// (audit row, idempotency record, PBX lookup).
	DefaultStoreTimeout = 5 * time.Second
	// DefaultIdempotencyTTL is how long an Idempotency-Key's first result
	// is replayed; older records are pruned.
	DefaultIdempotencyTTL = 24 * time.Hour
	// DefaultIdempotencyPruneEvery is how often (at most) a request prunes
	// expired idempotency records.
	DefaultIdempotencyPruneEvery = 10 * time.Minute
	// DefaultFleetPageSize and MaxFleetPageSize bound GET /v1/fleet pages.
	DefaultFleetPageSize = 1000
	MaxFleetPageSize     = 10000
	// DefaultAuditPageSize is GET /v1/audit's page when ?limit= is absent.
	DefaultAuditPageSize = store.DefaultAuditPageSize
	// DefaultKeyCacheTTL: a verified API key is trusted this long without
	// asking the store again, so a revoked key may work this much longer.
	DefaultKeyCacheTTL = 2 * time.Second
	// DefaultPBXCacheTTL: an enterprise's PBX list is reused this long.
	DefaultPBXCacheTTL = 2 * time.Second
	// DefaultBodyTimeout bounds receiving a request body, from the end of
	// its headers: 64 KiB in 30 s is 2 KiB/s.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds sending one response to a client that
	// does not read it.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultChannelsConcurrency bounds the PBXs GET /v1/channels asks at
	// once for an enterprise with many.
	DefaultChannelsConcurrency = 8
)

// AgentEndpoint serves agents' tunnels (the gateway).
type AgentEndpoint interface {
	// Connect authenticates one agent and serves its tunnel for the
	// session's life. An error means nothing was written: the API answers
	// it (a *gateway.RefusedError says how).
	Connect(w http.ResponseWriter, r *http.Request) error
}

// ClusterPeer serves internal calls from other replicas (the cluster
// package): it authenticates the call (an error matching
// cluster.ErrUnauthenticated is answered 401) and returns the reply body.
type ClusterPeer interface {
	HandleCall(ctx context.Context, h http.Header, body []byte) ([]byte, error)
	// HandleFetch serves a forwarded body op (a recording): it
	// authenticates the call before it calls start, then writes the
	// answer to the writer start returns.
	HandleFetch(ctx context.Context, h http.Header, body []byte, start func() io.Writer) error
	// Unauthenticated reports whether err is a refused signature.
	Unauthenticated(err error) bool
}

// Observer is told what the chain does (the control plane's metrics). Its
// methods must not block.
type Observer interface {
	// HTTPRequest: one request of route (its pattern) ended with code
	// after d; longLived marks a session (the agent tunnel), not a
	// request latency.
	HTTPRequest(route, method string, code int, d time.Duration, longLived bool)
	// RateLimited: a request was refused by a rate limit of scope.
	RateLimited(scope string)
	// ConnShed: the request's connection is closed for a reason of
	// connlimit's (body_timeout, unread_body).
	ConnShed(reason string)
}

type nopObserver struct{}

func (nopObserver) HTTPRequest(string, string, int, time.Duration, bool) {}
func (nopObserver) RateLimited(string)                                   {}
func (nopObserver) ConnShed(string)                                      {}

// Config configures the API. Zero values take the defaults above; Store,
// Directory, Caller, Events and Agents are required (controlplane.New
// fills them).
type Config struct {
	Store     *store.Store
	Directory fleet.Directory
	Caller    fleet.Caller
	// Events serves the event stream and pages, checks webhook URLs and
	// reads the call history.
	Events *events.Service
	// Agents serves GET /agent/v1/connect.
	Agents AgentEndpoint
	// Metrics serves GET /metrics; nil answers 404 there (metrics on a
	// listener of their own).
	Metrics http.Handler
	// MetricsToken, when set, is required as "Authorization: Bearer
	// <token>" on GET /metrics: the counters describe every tenant's
	// traffic.
	MetricsToken string
	// StoreFailing, when set, reports that agents' event batches are being
	// refused by the store (held and retried): /readyz then says so.
	StoreFailing func() (bool, error)
	// Cluster, when set, serves the internal calls other replicas forward
	// to this one (POST /cluster/v1/call); nil answers them 404.
	Cluster ClusterPeer
	// TicketKey, when set, MACs browser tickets with a key every replica
	// shares, and tickets are kept in the store: a ticket issued by one
	// replica is redeemed on any, once. Nil: in this process's memory.
	TicketKey []byte
	// Observer is told of every request and refusal; nil counts nothing.
	Observer Observer
	Logger   *slog.Logger
	Version  string

	// JWT verifies operator tokens (--jwt-secret-file,
	// --jwt-public-key-file). Nil: only API keys are accepted.
	JWT *auth.JWTVerifier
	// RateLimit is the per-credential and per-enterprise token buckets
	// (see ratelimit.Config for its defaults: 20/s burst 40 per
	// credential, 100/s burst 200 per enterprise).
	RateLimit ratelimit.Config
	// AMITimeout bounds each request to a PBX (504 past it).
	AMITimeout time.Duration
	// RecordingDownloadTimeout bounds one GET /v1/recordings/{id}, from
	// the request to the PBX to the last byte (DefaultRecordingDownloadTimeout).
	RecordingDownloadTimeout time.Duration
	// MaxBodyBytes bounds request bodies (413 past it).
	MaxBodyBytes int64
	// BodyTimeout bounds receiving a request body, from the end of its
	// headers (408 past it, and the connection is closed). The deadline is
	// lifted once the body is read, so it never cuts a slow handler.
	BodyTimeout time.Duration
	// WriteTimeout bounds sending one response (the connection is closed
	// past it). Hijacked responses (WebSockets) are not bounded by it.
	WriteTimeout time.Duration
	// StoreTimeout bounds store operations on the request path.
	StoreTimeout time.Duration
	// IdempotencyTTL: how long POST /v1/calls replays a key's result.
	IdempotencyTTL time.Duration
	// IdempotencyPruneEvery: how often expired records are deleted.
	IdempotencyPruneEvery time.Duration
	// MaxTicketsPerEnterprise bounds one enterprise's outstanding browser
	// tickets (POST /v1/events/ticket; 503 past it, counted as
	// switchboard_rate_limited_total{scope="event_tickets"}). Default
	// auth.DefaultMaxTicketsPerEnterprise.
	MaxTicketsPerEnterprise int
	// SessionTTL is how long a web console session lasts (never past its
	// credential's exp). Default DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessionsPerCredential bounds one credential's console sessions;
	// signing in past it ends the oldest (counted as
	// switchboard_rate_limited_total{scope="console_sessions"}). Default
	// DefaultMaxSessionsPerCredential.
	MaxSessionsPerCredential int
	// KeyCacheTTL and PBXCacheTTL bound how long a verified API key and
	// an enterprise's PBX list are reused; negative turns a cache off.
	// GET /v1/fleet's list of every agent may be up to 2×PBXCacheTTL old
	// (refreshed in the background).
	KeyCacheTTL time.Duration
	PBXCacheTTL time.Duration
	// HideChannelNames replaces real channel names in the legacy hangup
	// response with "<technology>/***" (the Laravel service's setting).
	HideChannelNames bool
	// Location is the zone of the legacy hangup's terminated_at
	// (2025-11-23T14:42:58+03:30); default time.Local.
	Location *time.Location
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.AMITimeout == 0 {
		c.AMITimeout = DefaultAMITimeout
	}
	if c.RecordingDownloadTimeout == 0 {
		c.RecordingDownloadTimeout = DefaultRecordingDownloadTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.IdempotencyPruneEvery == 0 {
		c.IdempotencyPruneEvery = DefaultIdempotencyPruneEvery
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.MaxSessionsPerCredential == 0 {
		c.MaxSessionsPerCredential = DefaultMaxSessionsPerCredential
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if c.PBXCacheTTL == 0 {
		c.PBXCacheTTL = DefaultPBXCacheTTL
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// missingDeps names the parts New needs and cfg lacks.
func (c Config) missingDeps() error {
	var errs []error
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Store", c.Store == nil}, {"Directory", c.Directory == nil}, {"Caller", c.Caller == nil},
		{"Events", c.Events == nil}, {"Agents", c.Agents == nil},
	} {
		if d.missing {
			errs = append(errs, fmt.Errorf("%s is required", d.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("api config: %w", err)
	}
	return nil
}

// Validate says exactly what is wrong with the configuration's values
// (New also checks that its dependencies are set).
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"AMITimeout", c.AMITimeout}, {"StoreTimeout", c.StoreTimeout},
		{"BodyTimeout", c.BodyTimeout}, {"WriteTimeout", c.WriteTimeout},
		{"IdempotencyTTL", c.IdempotencyTTL}, {"IdempotencyPruneEvery", c.IdempotencyPruneEvery},
		{"RecordingDownloadTimeout", c.RecordingDownloadTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.AMITimeout > time.Minute {
		errs = append(errs, fmt.Errorf("AMITimeout %v is over a minute: a caller would hold a connection that long", c.AMITimeout))
	}
	if c.MaxBodyBytes < 0 || (c.MaxBodyBytes > 0 && c.MaxBodyBytes < 1024) {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d must be at least 1024", c.MaxBodyBytes))
	}
	if c.SessionTTL < 0 {
		errs = append(errs, fmt.Errorf("SessionTTL %v is negative", c.SessionTTL))
	}
	if c.MaxSessionsPerCredential < 0 {
		errs = append(errs, fmt.Errorf("MaxSessionsPerCredential %d is negative", c.MaxSessionsPerCredential))
	}
	if c.MaxTicketsPerEnterprise < 0 {
		errs = append(errs, fmt.Errorf("MaxTicketsPerEnterprise %d is negative", c.MaxTicketsPerEnterprise))
	}
	if err := c.RateLimit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("api config: %w", err)
	}
	return nil
}
