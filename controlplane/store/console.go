package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The web console's sessions and sign-in links. A session's cookie holds
// sbs_ses_<id>_<secret> and a link sbl_lnk_<id>_<secret>, of the same shape
// as API keys; only the secret's SHA-256 is stored.
var (
	sessionKind = secretKind{tokenPrefix: "sbs_", idPrefix: "ses_"}
	linkKind    = secretKind{tokenPrefix: "sbl_", idPrefix: "lnk_"}
)

// ConsoleLinkPrefix starts every sign-in link token.
const ConsoleLinkPrefix = "sbl_"

// maxActorIDLen bounds an operator subject or key id kept with a session
// (a JWT's sub is already bounded by auth; this is the store's own guard).
const maxActorIDLen = 256

// ConsoleSession is a signed-in web console: the credential it stands for.
type ConsoleSession struct {
	ID string // "ses_…", public
	// ActorType is ActorAPIKey or ActorOperator; ActorID the key's id or
	// the operator's subject.
	ActorType string
	ActorID   string
	// EnterpriseID is 0 only for a platform_admin operator without one.
	EnterpriseID     int64
	EnterpriseNumber string
	// Roles of an operator session.
	Roles []string
	// Scopes of an API key session: the key's scopes when the session was
	// read, so a change to the key applies at once.
	Scopes    []string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ConsoleLink is a single-use sign-in URL's credential: an operator with
// roles, until ExpiresAt.
type ConsoleLink struct {
	ID               string // "lnk_…", public
	Subject          string
	EnterpriseID     int64 // 0: none (platform_admin)
	EnterpriseNumber string
	Roles            []string
	CreatedAt        time.Time
	ExpiresAt        time.Time
}

func splitRoles(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func validateActor(actorType, actorID string, roles []string) error {
	switch actorType {
	case ActorAPIKey, ActorOperator:
	default:
		return invalid("session actor type", "must be %q or %q, got %q", ActorAPIKey, ActorOperator, actorType)
	}
	if actorID == "" || len(actorID) > maxActorIDLen {
		return invalid("session actor id", "must be 1-%d bytes", maxActorIDLen)
	}
	for _, r := range roles {
		if r == "" || strings.ContainsAny(r, ", \t\r\n") {
			return invalid("roles", "role %q is not a role name", r)
		}
	}
	return nil
}

// CreateConsoleSession stores a session for the credential in sess (its
// ActorType, ActorID, EnterpriseID, Roles and ExpiresAt) and returns it
// with the cookie's token, which is not stored. The credential may hold at
// most maxPerCredential sessions (0: no bound): older ones beyond it are
// deleted, and their number returned. Expired sessions and links of every
// credential are deleted on the way, so the tables hold live rows only.
func (s *Store) CreateConsoleSession(ctx context.Context, sess ConsoleSession, maxPerCredential int) (ConsoleSession, string, int, error) {
	if err := validateActor(sess.ActorType, sess.ActorID, sess.Roles); err != nil {
		return ConsoleSession{}, "", 0, err
	}
	now := s.now()
	sess.CreatedAt = now
	sess.ExpiresAt = sess.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !sess.ExpiresAt.After(now) {
		return ConsoleSession{}, "", 0, invalid("session expiry", "%s is not in the future", sess.ExpiresAt.Format(time.RFC3339))
	}
	id, token, _ := sessionKind.newSecret()
	sess.ID = id
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return ConsoleSession{}, "", 0, fmt.Errorf("create console session: %w", err)
	}
	defer tx.Rollback()
	if err := pruneConsole(ctx, tx, s.d.timeArg(now)); err != nil {
		return ConsoleSession{}, "", 0, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO console_sessions
		(id, secret_hash, actor_type, actor_id, enterprise_id, roles, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		sess.ID, hashSecret(token), sess.ActorType, sess.ActorID, nullID(sess.EnterpriseID), strings.Join(sess.Roles, ","),
		s.d.timeArg(now), s.d.timeArg(sess.ExpiresAt))
	if err != nil {
		return ConsoleSession{}, "", 0, fmt.Errorf("create console session: %w", err)
	}
	evicted := 0
	if maxPerCredential > 0 {
		if evicted, err = evictSessions(ctx, tx, sess, maxPerCredential); err != nil {
			return ConsoleSession{}, "", 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return ConsoleSession{}, "", 0, fmt.Errorf("create console session: %w", err)
	}
	return sess, token, evicted, nil
}

func pruneConsole(ctx context.Context, tx *sql.Tx, now any) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now); err != nil {
		return fmt.Errorf("prune console sessions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM console_links WHERE expires_at <= $1`, now); err != nil {
		return fmt.Errorf("prune console links: %w", err)
	}
	return nil
}

// evictSessions deletes the credential's sessions beyond the newest max.
func evictSessions(ctx context.Context, tx *sql.Tx, sess ConsoleSession, max int) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM console_sessions
		WHERE actor_type = $1 AND actor_id = $2 AND COALESCE(enterprise_id, 0) = $3
		ORDER BY created_at DESC, id DESC`, sess.ActorType, sess.ActorID, sess.EnterpriseID)
	if err != nil {
		return 0, fmt.Errorf("count console sessions: %w", err)
	}
	var drop []string
	for n := 0; rows.Next(); n++ {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("count console sessions: %w", err)
		}
		if n >= max {
			drop = append(drop, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count console sessions: %w", err)
	}
	for _, id := range drop {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id = $1`, id); err != nil {
			return 0, fmt.Errorf("evict console session: %w", err)
		}
	}
	return len(drop), nil
}

// ConsoleSessionByToken reads the session a cookie names. An unknown,
// mangled or expired session is ErrNotFound; one whose API key was
// revoked (or deleted) is ErrRevoked; one whose enterprise is disabled is
// ErrEnterpriseInactive.
func (s *Store) ConsoleSessionByToken(ctx context.Context, token string) (ConsoleSession, error) {
	id, ok := sessionKind.parse(token)
	if !ok {
		return ConsoleSession{}, fmt.Errorf("console session: %w", ErrNotFound)
	}
	var (
		sess                 ConsoleSession
		hash, roles, scopes  string
		entActive, keyExists bool
		keyRevoked           time.Time
		entID                optID
	)
	err := s.queryRow(ctx, s.db, `SELECT s.secret_hash, s.actor_type, s.actor_id, s.enterprise_id,
		COALESCE(e.number, ''), COALESCE(e.active, TRUE), s.roles, s.created_at, s.expires_at,
		COALESCE(k.scopes, ''), k.revoked_at, k.id IS NOT NULL
		FROM console_sessions s
		LEFT JOIN enterprises e ON e.id = s.enterprise_id
		LEFT JOIN api_keys k ON s.actor_type = 'api_key' AND k.id = s.actor_id
		WHERE s.id = $1`, id).Scan(&hash, &sess.ActorType, &sess.ActorID, &entID, &sess.EnterpriseNumber, &entActive,
		&roles, dbTime{&sess.CreatedAt}, dbTime{&sess.ExpiresAt}, &scopes, dbTime{&keyRevoked}, &keyExists)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !secretMatches(token, hash) {
		return ConsoleSession{}, fmt.Errorf("console session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("console session %s: %w", id, err)
	}
	sess.ID, sess.EnterpriseID, sess.Roles = id, int64(entID), splitRoles(roles)
	switch {
	case !s.now().Before(sess.ExpiresAt):
		return ConsoleSession{}, fmt.Errorf("console session %s expired: %w", id, ErrNotFound)
	case sess.ActorType == ActorAPIKey && (!keyExists || !keyRevoked.IsZero()):
		return ConsoleSession{}, fmt.Errorf("console session %s: API key %s: %w", id, sess.ActorID, ErrRevoked)
	case !entActive:
		return ConsoleSession{}, fmt.Errorf("console session %s: %w", id, ErrEnterpriseInactive)
	}
	if sess.ActorType == ActorAPIKey {
		sess.Scopes = splitRoles(scopes)
	}
	return sess, nil
}

// DeleteConsoleSession ends a session (sign out). An unknown one is
// ErrNotFound.
func (s *Store) DeleteConsoleSession(ctx context.Context, id string) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM console_sessions WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete console session %s: %w", id, err)
	}
	return requireRow(res, "console session "+id)
}

// CreateConsoleLink stores a single-use sign-in link for an operator
// subject with roles, valid for ttl, and returns it with its token (not
// stored). enterpriseNumber may be empty for a platform_admin link; which
// roles need an enterprise is the caller's rule.
func (s *Store) CreateConsoleLink(ctx context.Context, enterpriseNumber, subject string, roles []string, ttl time.Duration) (ConsoleLink, string, error) {
	if len(roles) == 0 {
		return ConsoleLink{}, "", invalid("roles", "at least one is required")
	}
	if ttl <= 0 {
		return ConsoleLink{}, "", invalid("ttl", "must be positive, got %v", ttl)
	}
	id, token, _ := linkKind.newSecret()
	if subject == "" {
		subject = id // audit rows then name the link that signed in
	}
	if err := validateActor(ActorOperator, subject, roles); err != nil {
		return ConsoleLink{}, "", err
	}
	l := ConsoleLink{ID: id, Subject: subject, Roles: roles, CreatedAt: s.now()}
	l.ExpiresAt = l.CreatedAt.Add(ttl)
	if enterpriseNumber != "" {
		e, err := s.EnterpriseByNumber(ctx, enterpriseNumber)
		if err != nil {
			return ConsoleLink{}, "", fmt.Errorf("create console link: %w", err)
		}
		if !e.Active {
			return ConsoleLink{}, "", fmt.Errorf("create console link: enterprise %s: %w", e.Number, ErrEnterpriseInactive)
		}
		l.EnterpriseID, l.EnterpriseNumber = e.ID, e.Number
	}
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO console_links
		(id, secret_hash, subject, enterprise_id, roles, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		l.ID, hashSecret(token), l.Subject, nullID(l.EnterpriseID), strings.Join(l.Roles, ","),
		s.d.timeArg(l.CreatedAt), s.d.timeArg(l.ExpiresAt))
	if err != nil {
		return ConsoleLink{}, "", fmt.Errorf("create console link: %w", err)
	}
	return l, token, nil
}

// RedeemConsoleLink uses a sign-in link, once: an unknown, mangled,
// expired or already used link is ErrNotFound, and a link of a disabled
// enterprise ErrEnterpriseInactive. Two redemptions racing: one wins.
func (s *Store) RedeemConsoleLink(ctx context.Context, token string) (ConsoleLink, error) {
	id, ok := linkKind.parse(token)
	if !ok {
		return ConsoleLink{}, fmt.Errorf("console link: %w", ErrNotFound)
	}
	var (
		l         ConsoleLink
		hash      string
		roles     string
		entID     optID
		entActive bool
		usedAt    time.Time
	)
	err := s.wdb.QueryRowContext(ctx, `SELECT l.secret_hash, l.subject, l.enterprise_id, COALESCE(e.number, ''),
		COALESCE(e.active, TRUE), l.roles, l.created_at, l.expires_at, l.used_at
		FROM console_links l LEFT JOIN enterprises e ON e.id = l.enterprise_id WHERE l.id = $1`, id).Scan(
		&hash, &l.Subject, &entID, &l.EnterpriseNumber, &entActive, &roles, dbTime{&l.CreatedAt}, dbTime{&l.ExpiresAt}, dbTime{&usedAt})
	if errors.Is(err, sql.ErrNoRows) || err == nil && !secretMatches(token, hash) {
		return ConsoleLink{}, fmt.Errorf("console link %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ConsoleLink{}, fmt.Errorf("console link %s: %w", id, err)
	}
	now := s.now()
	switch {
	case !usedAt.IsZero():
		return ConsoleLink{}, fmt.Errorf("console link %s already used: %w", id, ErrNotFound)
	case !now.Before(l.ExpiresAt):
		return ConsoleLink{}, fmt.Errorf("console link %s expired: %w", id, ErrNotFound)
	case !entActive:
		return ConsoleLink{}, fmt.Errorf("console link %s: %w", id, ErrEnterpriseInactive)
	}
	res, err := s.wdb.ExecContext(ctx, `UPDATE console_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL`, id, s.d.timeArg(now))
	if err != nil {
		return ConsoleLink{}, fmt.Errorf("redeem console link %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ConsoleLink{}, fmt.Errorf("console link %s already used: %w", id, ErrNotFound)
	}
	l.ID, l.EnterpriseID, l.Roles = id, int64(entID), splitRoles(roles)
	return l, nil
}
