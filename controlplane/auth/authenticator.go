package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// APIKeyPrefix starts every enterprise API key: sbk_<id>_<secret>.
const APIKeyPrefix = "sbk_"

// Limits on credentials, checked before anything is looked up.
const (
	// DefaultMaxTokenBytes bounds a bearer token (API key or JWT). Real
	// ones are well under 2 KiB; this only stops a caller making us
	// base64-decode, hash or look up megabytes.
	DefaultMaxTokenBytes = 8 << 10
	// maxKeyIDLen bounds the public id part of an API key.
	maxKeyIDLen = 64
)

// Key is an API key record as the store knows it.
type Key struct {
	// ID is the key's public id, the <id> in sbk_<id>_<secret>.
	ID               string
	EnterpriseID     int64
	EnterpriseNumber string
	Scopes           []string
}

// KeyLookup finds the API key for a full token. Implementations return
// ErrUnknownKey, ErrRevokedKey, or ErrUnknownEnterprise (the key's
// enterprise is inactive), wrapped or not; any other error is treated as an
// outage, not as bad credentials.
type KeyLookup interface {
	LookupAPIKey(ctx context.Context, token string) (Key, error)
}

// EnterpriseLookup resolves a JWT's "enterprise" claim. Implementations
// return ErrUnknownEnterprise for a number that does not exist or whose
// enterprise is not active.
type EnterpriseLookup interface {
	EnterpriseIDByNumber(ctx context.Context, number string) (int64, error)
}

// Config configures New.
type Config struct {
	// Keys enables API keys. Without it every sbk_ token is refused.
	Keys KeyLookup
	// JWT enables operator tokens; it needs Enterprises.
	JWT         *JWTVerifier
	Enterprises EnterpriseLookup
	// Logger receives one Info line per refused credential, naming the
	// API key's public id or the verified operator subject, the reason and
	// the client address. Nil discards.
	Logger *slog.Logger
	// MaxTokenBytes: longer tokens are refused unread. Zero means
	// DefaultMaxTokenBytes.
	MaxTokenBytes int
}

// Validate says what is wrong with c, if anything.
func (c Config) Validate() error {
	if c.Keys == nil && c.JWT == nil {
		return errors.New("auth: neither API keys (Keys) nor JWT configured: every request would be refused")
	}
	if c.JWT != nil && c.Enterprises == nil {
		return errors.New("auth: JWT configured without Enterprises to resolve the enterprise claim")
	}
	if c.MaxTokenBytes < 0 {
		return fmt.Errorf("auth: MaxTokenBytes %d is negative", c.MaxTokenBytes)
	}
	return nil
}

// Authenticator turns a request's credentials into a Principal. It is safe
// for concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg, fills defaults and returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{cfg: cfg, log: log.With("component", "auth")}, nil
}

// Authenticate reads `Authorization: Bearer <token>`: tokens starting with
// sbk_ are API keys, anything else must be an operator JWT. When
// allowQueryClientID is true (the seed-compatible routes only) a request
// without that header may instead carry its API key as ?clientId=<key>;
// sending both is refused as ambiguous.
//
// Errors: ErrMissingCredentials, ErrInvalidCredentials (with a specific
// reason also matchable by errors.Is), or, for anything else, an outage of
// a lookup that the caller should answer with 5xx. Refusals are logged
// here; the caller need not log them again.
func (a *Authenticator) Authenticate(r *http.Request, allowQueryClientID bool) (Principal, error) {
	token, source, err := a.credential(r, allowQueryClientID)
	if err != nil {
		if !errors.Is(err, ErrMissingCredentials) {
			a.refused(r, source, "", err)
		}
		return Principal{}, err
	}
	p, keyID, err := a.authenticateToken(r.Context(), token, source == sourceQuery)
	if err != nil && errors.Is(err, ErrInvalidCredentials) {
		a.refused(r, source, keyID, err)
	}
	return p, err
}

const (
	sourceHeader = "header"
	sourceQuery  = "query"
)

// credential extracts the one token a request carries.
func (a *Authenticator) credential(r *http.Request, allowQuery bool) (token, source string, err error) {
	headers := r.Header.Values("Authorization")
	var clientIDs []string
	if allowQuery {
		clientIDs = r.URL.Query()["clientId"]
	}
	switch {
	case len(headers) > 1 || len(clientIDs) > 1:
		return "", sourceHeader, invalid(ErrAmbiguousCredentials)
	case len(headers) == 1 && strings.TrimSpace(headers[0]) != "":
		if len(clientIDs) > 0 {
			return "", sourceHeader, invalid(ErrAmbiguousCredentials)
		}
		token, err := parseAuthorization(headers[0], a.cfg.MaxTokenBytes)
		return token, sourceHeader, err
	case len(clientIDs) == 1 && clientIDs[0] != "":
		if len(clientIDs[0]) > a.cfg.MaxTokenBytes {
			return "", sourceQuery, invalid(ErrMalformedCredentials)
		}
		return clientIDs[0], sourceQuery, nil
	default:
		return "", "", ErrMissingCredentials
	}
}

// parseAuthorization returns the token of a Bearer Authorization header
// value. The scheme is case-insensitive (RFC 9110 §11.1); the token is one
// run of visible ASCII.
func parseAuthorization(h string, maxToken int) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", ErrMissingCredentials
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", invalid(ErrUnsupportedScheme)
	}
	token := strings.TrimLeft(rest, " ")
	if token == "" || len(token) > maxToken || !visibleASCII(token) {
		return "", invalid(ErrMalformedCredentials)
	}
	return token, nil
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// AuthenticateToken authenticates a bare bearer token (e.g. one taken from
// a WebSocket subprotocol). Unlike Authenticate it does not log refusals.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrMissingCredentials
	}
	if len(token) > a.cfg.MaxTokenBytes || !visibleASCII(token) {
		return Principal{}, invalid(ErrMalformedCredentials)
	}
	p, _, err := a.authenticateToken(ctx, token, false)
	return p, err
}

// authenticateToken also returns the API key's public id, when the token
// had one, for logging.
func (a *Authenticator) authenticateToken(ctx context.Context, token string, apiKeyOnly bool) (Principal, string, error) {
	if strings.HasPrefix(token, APIKeyPrefix) {
		return a.apiKey(ctx, token)
	}
	if apiKeyOnly {
		// ?clientId= carries API keys only: a JWT in a URL would end up in
		// every proxy's access log.
		return Principal{}, "", invalid(ErrMalformedCredentials)
	}
	p, err := a.operator(ctx, token)
	return p, "", err
}

// ParseAPIKeyID returns the public id of an API key token and whether the
// token has the shape sbk_<id>_<secret>. The store makes ids like
// "key_<base32>" and secrets of base32, which has no '_', so the token
// splits at its last '_'. The id is safe to log; the secret never is.
func ParseAPIKeyID(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, APIKeyPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 || i == len(rest)-1 || i > maxKeyIDLen {
		return "", false
	}
	id, secret := rest[:i], rest[i+1:]
	if !visibleASCII(secret) {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return id, true
}

func (a *Authenticator) apiKey(ctx context.Context, token string) (Principal, string, error) {
	id, ok := ParseAPIKeyID(token)
	if !ok {
		return Principal{}, "", invalid(ErrMalformedCredentials)
	}
	if a.cfg.Keys == nil {
		return Principal{}, id, invalid(ErrKeysNotConfigured)
	}
	k, err := a.cfg.Keys.LookupAPIKey(ctx, token)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Principal{}, id, invalid(ErrUnknownKey)
	case errors.Is(err, ErrRevokedKey):
		return Principal{}, id, invalid(ErrRevokedKey)
	case errors.Is(err, ErrUnknownEnterprise):
		return Principal{}, id, invalid(ErrUnknownEnterprise)
	case err != nil:
		return Principal{}, id, fmt.Errorf("auth: look up api key %s: %w", id, err)
	case k.EnterpriseID == 0:
		// Fail closed: a key without an enterprise could not be confined.
		return Principal{}, id, fmt.Errorf("auth: api key %s has no enterprise", id)
	}
	if k.ID == "" {
		k.ID = id
	}
	p := Principal{
		Kind:             KindAPIKey,
		ID:               k.ID,
		EnterpriseID:     k.EnterpriseID,
		EnterpriseNumber: k.EnterpriseNumber,
		Scopes:           k.Scopes,
	}
	return p.clone(), id, nil
}

func (a *Authenticator) operator(ctx context.Context, token string) (Principal, error) {
	if a.cfg.JWT == nil {
		return Principal{}, invalid(ErrJWTNotEnabled)
	}
	c, err := a.cfg.JWT.Verify(token)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Kind: KindOperator, ID: c.Subject, EnterpriseNumber: c.Enterprise, Roles: c.Roles, Expires: c.ExpiresAt}
	if c.Enterprise != "" {
		id, err := a.cfg.Enterprises.EnterpriseIDByNumber(ctx, c.Enterprise)
		switch {
		case errors.Is(err, ErrUnknownEnterprise):
			// The signature verified, so sub is the issuer's word and safe
			// to name.
			return Principal{}, fmt.Errorf("operator %q: %w: %w", c.Subject, errOperatorEnterprise, invalid(ErrUnknownEnterprise))
		case err != nil:
			return Principal{}, fmt.Errorf("auth: look up enterprise %q: %w", c.Enterprise, err)
		case id == 0:
			return Principal{}, fmt.Errorf("auth: enterprise %q resolved to id 0", c.Enterprise)
		}
		p.EnterpriseID = id
	}
	return p, nil
}

func (a *Authenticator) refused(r *http.Request, source, keyID string, err error) {
	attrs := []slog.Attr{
		slog.String("source", source),
		slog.String("reason", err.Error()),
		slog.String("remote", r.RemoteAddr),
	}
	if keyID != "" {
		attrs = append(attrs, slog.String("key_id", keyID))
	}
	// Warn: a refused credential is something an operator acts on (a
	// client with a stale key, or someone guessing), and the demo's
	// default level shows it.
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "credentials refused", attrs...)
}
