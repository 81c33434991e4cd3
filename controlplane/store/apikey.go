package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// API key scopes. A key may do only what its scopes allow.
const (
	ScopeOriginate    = "originate"
	ScopeMonitor      = "monitor"
	ScopeHangup       = "hangup"
	ScopeChannelsRead = "channels:read"
	ScopeEventsRead   = "events:read"
	ScopeAuditRead    = "audit:read"
	// Call-centre operations.
	ScopeCallsControl   = "calls:control"
	ScopeRecordings     = "recordings"
	ScopeRecordingsRead = "recordings:read"
	ScopeQueuesRead     = "queues:read"
	ScopeQueuesManage   = "queues:manage"
)

var allowedScopes = []string{
	ScopeOriginate, ScopeMonitor, ScopeHangup, ScopeChannelsRead, ScopeEventsRead, ScopeAuditRead,
	ScopeCallsControl, ScopeRecordings, ScopeRecordingsRead, ScopeQueuesRead, ScopeQueuesManage,
}

// AllowedScopes returns every valid scope, in canonical order.
func AllowedScopes() []string { return slices.Clone(allowedScopes) }

// IsAllowedScope reports whether scope is one of AllowedScopes.
func IsAllowedScope(scope string) bool { return slices.Contains(allowedScopes, scope) }

// normalizeScopes checks scopes against the allowed set and returns them
// de-duplicated in canonical order.
func normalizeScopes(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, invalid("scopes", "at least one is required; allowed: %s", strings.Join(allowedScopes, ", "))
	}
	for _, sc := range in {
		if !IsAllowedScope(sc) {
			return nil, invalid("scopes", "unknown scope %q; allowed: %s", sc, strings.Join(allowedScopes, ", "))
		}
	}
	out := make([]string, 0, len(in))
	for _, sc := range allowedScopes {
		if slices.Contains(in, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// APIKey lets an enterprise's systems call the REST API.
type APIKey struct {
	ID               string // "key_…", public
	EnterpriseID     int64
	EnterpriseNumber string
	Name             string
	Prefix           string   // "sbk_key_…": the key without its secret, for display
	Scopes           []string // canonical order
	CreatedAt        time.Time
	RevokedAt        time.Time // zero while the key is live
}

// Revoked reports whether the key was revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// HasScope reports whether the key grants scope.
func (k APIKey) HasScope(scope string) bool { return slices.Contains(k.Scopes, scope) }

const apiKeySelect = `SELECT k.id, k.enterprise_id, e.number, e.active, k.name, k.key_prefix, k.key_hash,
	k.scopes, k.created_at, k.revoked_at
	FROM api_keys k JOIN enterprises e ON e.id = k.enterprise_id`

type apiKeyRow struct {
	APIKey
	enterpriseActive bool
	keyHash          string
}

func scanAPIKey(row interface{ Scan(...any) error }) (apiKeyRow, error) {
	var r apiKeyRow
	var scopes string
	err := row.Scan(&r.ID, &r.EnterpriseID, &r.EnterpriseNumber, &r.enterpriseActive, &r.Name, &r.Prefix, &r.keyHash,
		&scopes, dbTime{&r.CreatedAt}, dbTime{&r.RevokedAt})
	if scopes != "" {
		r.Scopes = strings.Split(scopes, ",")
	}
	return r, err
}

// CreateAPIKey issues a key for an enterprise and returns it with the
// plain key, which is not stored and cannot be shown again.
func (s *Store) CreateAPIKey(ctx context.Context, enterpriseNumber, name string, scopes []string) (APIKey, string, error) {
	name, err := cleanName("API key name", name)
	if err != nil {
		return APIKey{}, "", err
	}
	scopes, err = normalizeScopes(scopes)
	if err != nil {
		return APIKey{}, "", err
	}
	e, err := s.EnterpriseByNumber(ctx, enterpriseNumber)
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create API key: %w", err)
	}
	id, key, prefix := apiKeyKind.newSecret()
	k := APIKey{
		ID: id, EnterpriseID: e.ID, EnterpriseNumber: e.Number, Name: name, Prefix: prefix,
		Scopes: scopes, CreatedAt: s.now(),
	}
	_, err = s.wdb.ExecContext(ctx, `INSERT INTO api_keys
		(id, enterprise_id, name, key_hash, key_prefix, scopes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.EnterpriseID, k.Name, hashSecret(key), k.Prefix, strings.Join(k.Scopes, ","), s.d.timeArg(k.CreatedAt))
	if isUniqueViolation(err) {
		return APIKey{}, "", fmt.Errorf("create API key: %w: id collision, retry", ErrConflict)
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create API key: %w", err)
	}
	return k, key, nil
}

// APIKeyByToken authenticates a plain API key, with the same error rules
// as AgentByToken.
func (s *Store) APIKeyByToken(ctx context.Context, key string) (APIKey, error) {
	id, ok := apiKeyKind.parse(key)
	if !ok {
		return APIKey{}, fmt.Errorf("API key: %w", ErrNotFound)
	}
	r, err := scanAPIKey(s.queryRow(ctx, s.db, apiKeySelect+` WHERE k.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && !secretMatches(key, r.keyHash) {
		return APIKey{}, fmt.Errorf("API key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("API key %s: %w", id, err)
	}
	if r.Revoked() {
		return APIKey{}, fmt.Errorf("API key %s: %w", id, ErrRevoked)
	}
	if !r.enterpriseActive {
		return APIKey{}, fmt.Errorf("API key %s: %w", id, ErrEnterpriseInactive)
	}
	return r.APIKey, nil
}

// RevokeAPIKey makes a key stop authenticating, for good. Revoking twice
// is ErrRevoked; an unknown id is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	return s.revoke(ctx, "api_keys", "API key", id)
}

// ListAPIKeys returns the keys of one enterprise, or of all when
// enterpriseID is 0, revoked ones included.
func (s *Store) ListAPIKeys(ctx context.Context, enterpriseID int64) ([]APIKey, error) {
	q, args := apiKeySelect, []any{}
	if enterpriseID != 0 {
		q, args = q+` WHERE k.enterprise_id = $1`, append(args, enterpriseID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY e.number, k.created_at, k.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		r, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		out = append(out, r.APIKey)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return out, nil
}
