package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Agent is one PBX-side daemon, authenticated by its token and confined to
// its enterprise.
type Agent struct {
	ID               string // "agt_…", public
	EnterpriseID     int64
	EnterpriseNumber string
	Name             string
	Context          string // dialplan context for originate, default "inoffice"
	TokenPrefix      string // "sbat_agt_…": the token without its secret, for display
	CreatedAt        time.Time
	RevokedAt        time.Time // zero while the agent is live
	LastSeenAt       time.Time // zero until the agent first connects
	LastAckedSeq     int64     // last event sequence the control plane stored
}

// Revoked reports whether the agent's token was revoked.
func (a Agent) Revoked() bool { return !a.RevokedAt.IsZero() }

const agentSelect = `SELECT a.id, a.enterprise_id, e.number, e.active, a.name, a.context,
	a.token_prefix, a.token_hash, a.created_at, a.revoked_at, a.last_seen_at, a.last_acked_seq
	FROM agents a JOIN enterprises e ON e.id = a.enterprise_id`

type agentRow struct {
	Agent
	enterpriseActive bool
	tokenHash        string
}

func scanAgent(row interface{ Scan(...any) error }) (agentRow, error) {
	var r agentRow
	err := row.Scan(&r.ID, &r.EnterpriseID, &r.EnterpriseNumber, &r.enterpriseActive, &r.Name, &r.Context,
		&r.TokenPrefix, &r.tokenHash, dbTime{&r.CreatedAt}, dbTime{&r.RevokedAt}, dbTime{&r.LastSeenAt}, &r.LastAckedSeq)
	return r, err
}

// CreateAgent registers a PBX agent for an enterprise and returns it with
// its token. The token is not stored and cannot be shown again.
// An empty context means DefaultContext.
func (s *Store) CreateAgent(ctx context.Context, enterpriseNumber, name, dialContext string) (Agent, string, error) {
	name, err := cleanName("agent name", name)
	if err != nil {
		return Agent{}, "", err
	}
	if dialContext == "" {
		dialContext = DefaultContext
	}
	if err := validateContext(dialContext); err != nil {
		return Agent{}, "", err
	}
	e, err := s.EnterpriseByNumber(ctx, enterpriseNumber)
	if err != nil {
		return Agent{}, "", fmt.Errorf("create agent: %w", err)
	}
	id, token, prefix := agentTokenKind.newSecret()
	a := Agent{
		ID: id, EnterpriseID: e.ID, EnterpriseNumber: e.Number, Name: name, Context: dialContext,
		TokenPrefix: prefix, CreatedAt: s.now(),
	}
	// A PBX is named by its id or its name (API, legacy routes, CLI), so
	// a name is unique among the enterprise's live agents; a revoked
	// agent's name may be taken again by its replacement.
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO agents
		(id, enterprise_id, name, context, token_hash, token_prefix, created_at, last_acked_seq)
		SELECT $1, $2, $3, $4, $5, $6, $7, 0
		WHERE NOT EXISTS (SELECT 1 FROM agents WHERE enterprise_id = $2 AND name = $3 AND revoked_at IS NULL)`,
		a.ID, a.EnterpriseID, a.Name, a.Context, hashSecret(token), a.TokenPrefix, s.d.timeArg(a.CreatedAt))
	if isUniqueViolation(err) {
		return Agent{}, "", fmt.Errorf("create agent: %w: id collision, retry", ErrConflict)
	}
	if err != nil {
		return Agent{}, "", fmt.Errorf("create agent: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return Agent{}, "", fmt.Errorf("create agent: %w: enterprise %s already has a PBX named %q", ErrConflict, e.Number, name)
	}
	return a, token, nil
}

// AgentByToken authenticates an agent token. Unknown, malformed or wrong
// secrets are all ErrNotFound; a matching secret of a revoked agent is
// ErrRevoked; of a disabled enterprise, ErrEnterpriseInactive.
func (s *Store) AgentByToken(ctx context.Context, token string) (Agent, error) {
	id, ok := agentTokenKind.parse(token)
	if !ok {
		return Agent{}, fmt.Errorf("agent token: %w", ErrNotFound)
	}
	r, err := scanAgent(s.queryRow(ctx, s.db, agentSelect+` WHERE a.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && !secretMatches(token, r.tokenHash) {
		return Agent{}, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent %s: %w", id, err)
	}
	if r.Revoked() {
		return Agent{}, fmt.Errorf("agent %s: %w", id, ErrRevoked)
	}
	if !r.enterpriseActive {
		return Agent{}, fmt.Errorf("agent %s: %w", id, ErrEnterpriseInactive)
	}
	return r.Agent, nil
}

// AgentByID returns an agent, revoked or not, or ErrNotFound.
func (s *Store) AgentByID(ctx context.Context, id string) (Agent, error) {
	r, err := scanAgent(s.db.QueryRowContext(ctx, agentSelect+` WHERE a.id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent %s: %w", id, err)
	}
	return r.Agent, nil
}

// RevokeAgent makes the agent's token stop authenticating, for good.
// Revoking twice is ErrRevoked; an unknown id is ErrNotFound.
func (s *Store) RevokeAgent(ctx context.Context, id string) error {
	return s.revoke(ctx, "agents", "agent", id)
}

// ListAgents returns the agents of one enterprise, or of all enterprises
// when enterpriseID is 0, revoked ones included.
func (s *Store) ListAgents(ctx context.Context, enterpriseID int64) ([]Agent, error) {
	q, args := agentSelect, []any{}
	if enterpriseID != 0 {
		q, args = q+` WHERE a.enterprise_id = $1`, append(args, enterpriseID)
	}
	rows, err := s.query(ctx, s.db, q+` ORDER BY e.number, a.created_at, a.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		r, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, r.Agent)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// AgentsByEnterprise lists an enterprise's agents by enterprise number.
func (s *Store) AgentsByEnterprise(ctx context.Context, enterpriseNumber string) ([]Agent, error) {
	e, err := s.EnterpriseByNumber(ctx, enterpriseNumber)
	if err != nil {
		return nil, err
	}
	return s.ListAgents(ctx, e.ID)
}

// TouchAgent records when the agent was last seen connected.
func (s *Store) TouchAgent(ctx context.Context, id string, seenAt time.Time) error {
	if seenAt.IsZero() {
		return invalid("seen time", "must not be zero")
	}
	res, err := s.wdb.ExecContext(ctx, `UPDATE agents SET last_seen_at = $2 WHERE id = $1`, id, s.d.timeArg(seenAt))
	if err != nil {
		return fmt.Errorf("touch agent %s: %w", id, err)
	}
	return requireRow(res, "agent "+id)
}

// TouchAgents records several agents' last seen times in one transaction
// (one fsync on SQLite, however large the fleet). Unknown ids are
// skipped: an agent deleted meanwhile has nothing to record.
func (s *Store) TouchAgents(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("touch agents: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE agents SET last_seen_at = $2 WHERE id = $1`)
	if err != nil {
		return fmt.Errorf("touch agents: %w", err)
	}
	defer stmt.Close()
	for id, at := range seen {
		if at.IsZero() {
			return invalid("seen time", "must not be zero (agent %s)", id)
		}
		if _, err := stmt.ExecContext(ctx, id, s.d.timeArg(at)); err != nil {
			return fmt.Errorf("touch agent %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("touch agents: commit: %w", err)
	}
	return nil
}

// SetAgentAckedSeq records that every event up to seq from this agent is
// stored. It only moves forward, so a late acknowledgement from a
// connection that was since replaced cannot move it back (which would make
// the agent resend events already stored).
func (s *Store) SetAgentAckedSeq(ctx context.Context, id string, seq int64) error {
	if seq < 0 {
		return invalid("acknowledged sequence", "must not be negative, got %d", seq)
	}
	res, err := s.wdb.ExecContext(ctx,
		`UPDATE agents SET last_acked_seq = $2 WHERE id = $1 AND last_acked_seq < $2`, id, seq)
	if err != nil {
		return fmt.Errorf("set agent %s acked seq: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set agent %s acked seq: %w", id, err)
	} else if n > 0 {
		return nil
	}
	// Nothing changed: either already at or past seq (fine) or no agent.
	_, err = s.AgentAckedSeq(ctx, id)
	return err
}

// AgentAckedSeq returns the last acknowledged event sequence of an agent.
func (s *Store) AgentAckedSeq(ctx context.Context, id string) (int64, error) {
	var seq int64
	err := s.queryRow(ctx, s.db, `SELECT last_acked_seq FROM agents WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("agent %s acked seq: %w", id, err)
	}
	return seq, nil
}

// revoke sets revoked_at on a live agents/api_keys row.
func (s *Store) revoke(ctx context.Context, table, what, id string) error {
	res, err := s.wdb.ExecContext(ctx,
		`UPDATE `+table+` SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, s.d.timeArg(s.now()))
	if err != nil {
		return fmt.Errorf("revoke %s %s: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke %s %s: %w", what, id, err)
	}
	if n > 0 {
		return nil
	}
	var exists int
	err = s.wdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE id = $1`, id).Scan(&exists)
	switch {
	case err != nil:
		return fmt.Errorf("revoke %s %s: %w", what, id, err)
	case exists == 0:
		return fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	default:
		return fmt.Errorf("%s %s: already %w", what, id, ErrRevoked)
	}
}

func requireRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Revocations are the agents and API keys revoked since a point in time.
type Revocations struct {
	Agents  []string // agent ids
	APIKeys []string // API key ids
}

// RevokedSince lists the agents and API keys revoked at or after since:
// what a running control plane polls so that a revocation written by
// another process (the CLI, another replica) closes the live tunnels and
// streams it holds.
func (s *Store) RevokedSince(ctx context.Context, since time.Time) (Revocations, error) {
	var out Revocations
	for _, q := range []struct {
		table string
		dst   *[]string
	}{{"agents", &out.Agents}, {"api_keys", &out.APIKeys}} {
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM `+q.table+` WHERE revoked_at >= $1`, s.d.timeArg(since))
		if err != nil {
			return Revocations{}, fmt.Errorf("revoked %s: %w", q.table, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return Revocations{}, fmt.Errorf("revoked %s: %w", q.table, err)
			}
			*q.dst = append(*q.dst, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return Revocations{}, fmt.Errorf("revoked %s: %w", q.table, err)
		}
	}
	return out, nil
}
