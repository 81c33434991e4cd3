package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Owner says which replica holds an agent's tunnel, and what the agent
// last reported there (for the fleet view on the other replicas).
type Owner struct {
	AgentID string
	// ReplicaID is empty when no replica holds the agent.
	ReplicaID string
	// Generation grows with every claim of the agent: the highest is the
	// newest connection, which wins.
	Generation      int64
	SessionID       string
	Since           time.Time
	Hostname        string
	AgentVersion    string
	Protocol        int
	AsteriskVersion string
	AMI             string
	LiveChannels    int
	LiveCalls       int
	StatusAt        time.Time
}

// OwnerStatus is the part of an Owner its replica updates as the agent
// reports.
type OwnerStatus struct {
	AgentID         string
	Generation      int64
	AgentVersion    string
	AsteriskVersion string
	AMI             string
	LiveChannels    int
	LiveCalls       int
	StatusAt        time.Time
}

// ClaimAgents records that replica o.ReplicaID now holds agent o.AgentID
// (session, hello facts, first status), for several agents (each at most
// once) in one transaction, and returns each claim's generation, one more
// than any before it. notify, if set, is a NOTIFY channel (PostgreSQL)
// told payload(agent, generation) when the claims commit: 3,000 agents reconnecting at once cost a few commits,
// and on PostgreSQL a few NOTIFYs (payload(agent, generation) lines joined
// up to MaxNotifyPayload), not 3,000 (a NOTIFY serialises commits).
func (s *Store) ClaimAgents(ctx context.Context, owners []Owner, notify string, payload func(agent string, generation int64) string) ([]int64, error) {
	seen := make(map[string]bool, len(owners))
	for _, o := range owners {
		if o.AgentID == "" || o.ReplicaID == "" {
			return nil, invalid("agent owner", "agent and replica must be set")
		}
		if seen[o.AgentID] {
			return nil, invalid("agent owner", "agent %s twice in one claim", o.AgentID)
		}
		seen[o.AgentID] = true
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim agents: %w", err)
	}
	defer tx.Rollback()
	var gens []int64
	if s.d.name == dialectPostgres {
		gens, err = s.claimAgentsPG(ctx, tx, owners)
	} else {
		gens, err = s.claimAgentsEach(ctx, tx, owners)
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	for i, o := range owners {
		if payload != nil {
			lines = append(lines, payload(o.AgentID, gens[i]))
		}
	}
	if err := s.notifyIn(ctx, tx, notify, lines); err != nil {
		return nil, fmt.Errorf("claim agents: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim agents: commit: %w", err)
	}
	return gens, nil
}

const claimSet = `ON CONFLICT (agent_id) DO UPDATE SET replica_id = excluded.replica_id, generation = agent_owners.generation + 1,
			session_id = excluded.session_id, since = excluded.since, hostname = excluded.hostname,
			agent_version = excluded.agent_version, protocol = excluded.protocol, asterisk_version = excluded.asterisk_version,
			ami = excluded.ami, live_channels = excluded.live_channels, live_calls = excluded.live_calls, status_at = excluded.status_at`

// claimAgentsPG claims every owner in one statement (arrays unnested):
// a storm of reconnects is one round trip per batch.
func (s *Store) claimAgentsPG(ctx context.Context, tx *sql.Tx, owners []Owner) ([]int64, error) {
	n := len(owners)
	ids, replicas, sessions := make([]string, n), make([]string, n), make([]string, n)
	hosts, versions, asterisks, amis := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	protocols, channels, calls := make([]int64, n), make([]int64, n), make([]int64, n)
	since, statusAt := make([]time.Time, n), make([]time.Time, n)
	for i, o := range owners {
		ids[i], replicas[i], sessions[i] = o.AgentID, o.ReplicaID, o.SessionID
		hosts[i], versions[i], asterisks[i], amis[i] = cleanText(o.Hostname), cleanText(o.AgentVersion), cleanText(o.AsteriskVersion), cleanText(o.AMI)
		protocols[i], channels[i], calls[i] = int64(o.Protocol), int64(o.LiveChannels), int64(o.LiveCalls)
		since[i], statusAt[i] = o.Since.UTC().Truncate(time.Microsecond), o.StatusAt.UTC().Truncate(time.Microsecond)
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO agent_owners (agent_id, replica_id, generation, session_id, since,
			hostname, agent_version, protocol, asterisk_version, ami, live_channels, live_calls, status_at)
		SELECT a, r, 1, ses, NULLIF(sn, '0001-01-01 00:00:00+00'), h, v, p, ast, m, ch, ca, NULLIF(st, '0001-01-01 00:00:00+00')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::int[], $8::text[],
			$9::text[], $10::int[], $11::int[], $12::timestamptz[]) AS x(a, r, ses, sn, h, v, p, ast, m, ch, ca, st)
		`+claimSet+` RETURNING agent_id, generation`,
		ids, replicas, sessions, since, hosts, versions, protocols, asterisks, amis, channels, calls, statusAt)
	if err != nil {
		return nil, fmt.Errorf("claim agents: %w", err)
	}
	defer rows.Close()
	got := make(map[string]int64, n)
	for rows.Next() {
		var id string
		var gen int64
		if err := rows.Scan(&id, &gen); err != nil {
			return nil, fmt.Errorf("claim agents: %w", err)
		}
		got[id] = gen
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim agents: %w", err)
	}
	gens := make([]int64, n)
	for i, id := range ids {
		if gens[i] = got[id]; gens[i] == 0 {
			return nil, fmt.Errorf("claim agents: agent %s: no generation returned", id)
		}
	}
	return gens, nil
}

// claimAgentsEach claims one owner per statement (SQLite: one replica, one
// writer, nothing to gain).
func (s *Store) claimAgentsEach(ctx context.Context, tx *sql.Tx, owners []Owner) ([]int64, error) {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO agent_owners (agent_id, replica_id, generation, session_id, since,
			hostname, agent_version, protocol, asterisk_version, ami, live_channels, live_calls, status_at)
		VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		`+claimSet+` RETURNING generation`)
	if err != nil {
		return nil, fmt.Errorf("claim agents: %w", err)
	}
	defer stmt.Close()
	gens := make([]int64, len(owners))
	for i, o := range owners {
		if err := stmt.QueryRowContext(ctx, o.AgentID, o.ReplicaID, o.SessionID, s.d.timeArg(o.Since), cleanText(o.Hostname),
			cleanText(o.AgentVersion), o.Protocol, cleanText(o.AsteriskVersion), cleanText(o.AMI), o.LiveChannels, o.LiveCalls,
			s.d.timeArg(o.StatusAt)).Scan(&gens[i]); err != nil {
			return nil, fmt.Errorf("claim agent %s: %w", o.AgentID, err)
		}
	}
	return gens, nil
}

// notifyIn sends lines on channel from tx (delivered at commit, so no
// replica hears of what did not happen), joined into as few payloads as
// fit MaxNotifyPayload. Nothing on SQLite, or without a channel.
func (s *Store) notifyIn(ctx context.Context, tx *sql.Tx, channel string, lines []string) error {
	if channel == "" || s.d.name != dialectPostgres || len(lines) == 0 {
		return nil
	}
	var payloads []string
	var b strings.Builder
	for _, l := range lines {
		if b.Len() > 0 && b.Len()+1+len(l) > MaxNotifyPayload {
			payloads = append(payloads, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	payloads = append(payloads, b.String())
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, channel, payloads); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// Release names one claim that ended.
type Release struct {
	AgentID    string
	Generation int64
}

// ReleaseAgents records that the claims (agent, generation) ended, in one
// transaction. A newer claim of an agent is left alone. It reports which
// claims were still current; for each, if notify is set (PostgreSQL),
// payload(agent, generation) is sent on that channel when the releases
// commit.
func (s *Store) ReleaseAgents(ctx context.Context, rs []Release, notify string, payload func(agent string, generation int64) string) ([]bool, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("release agents: %w", err)
	}
	defer tx.Rollback()
	out, err := s.releaseAgents(ctx, tx, rs)
	if err != nil {
		return nil, err
	}
	var lines []string
	for i, r := range rs {
		if out[i] && payload != nil {
			lines = append(lines, payload(r.AgentID, r.Generation))
		}
	}
	if err := s.notifyIn(ctx, tx, notify, lines); err != nil {
		return nil, fmt.Errorf("release agents: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("release agents: commit: %w", err)
	}
	return out, nil
}

// releaseAgents ends the claims that are still current, in one
// statement on PostgreSQL, and says which were.
func (s *Store) releaseAgents(ctx context.Context, tx *sql.Tx, rs []Release) ([]bool, error) {
	out := make([]bool, len(rs))
	if s.d.name == dialectPostgres {
		ids, gens := make([]string, len(rs)), make([]int64, len(rs))
		for i, r := range rs {
			ids[i], gens[i] = r.AgentID, r.Generation
		}
		rows, err := tx.QueryContext(ctx, `UPDATE agent_owners o SET replica_id = NULL
			FROM unnest($1::text[], $2::bigint[]) AS r(a, g)
			WHERE o.agent_id = r.a AND o.generation = r.g AND o.replica_id IS NOT NULL RETURNING o.agent_id, o.generation`, ids, gens)
		if err != nil {
			return nil, fmt.Errorf("release agents: %w", err)
		}
		defer rows.Close()
		done := map[Release]bool{}
		for rows.Next() {
			var r Release
			if err := rows.Scan(&r.AgentID, &r.Generation); err != nil {
				return nil, fmt.Errorf("release agents: %w", err)
			}
			done[r] = true
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("release agents: %w", err)
		}
		for i, r := range rs {
			out[i] = done[r]
		}
		return out, nil
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE agent_owners SET replica_id = NULL WHERE agent_id = $1 AND generation = $2 AND replica_id IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("release agents: %w", err)
	}
	defer stmt.Close()
	for i, r := range rs {
		res, err := stmt.ExecContext(ctx, r.AgentID, r.Generation)
		if err != nil {
			return nil, fmt.Errorf("release agent %s: %w", r.AgentID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, fmt.Errorf("release agent %s: %w", r.AgentID, err)
		}
		out[i] = n == 1
	}
	return out, nil
}

// UpdateOwnerStatus writes the agents' latest status, each only where its
// generation is still the current claim: one statement on PostgreSQL.
func (s *Store) UpdateOwnerStatus(ctx context.Context, sts []OwnerStatus) error {
	if len(sts) == 0 {
		return nil
	}
	if s.d.name == dialectPostgres {
		n := len(sts)
		ids, versions, asterisks, amis := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		gens, channels, calls := make([]int64, n), make([]int64, n), make([]int64, n)
		at := make([]time.Time, n)
		for i, st := range sts {
			ids[i], gens[i] = st.AgentID, st.Generation
			versions[i], asterisks[i], amis[i] = cleanText(st.AgentVersion), cleanText(st.AsteriskVersion), cleanText(st.AMI)
			channels[i], calls[i], at[i] = int64(st.LiveChannels), int64(st.LiveCalls), st.StatusAt.UTC().Truncate(time.Microsecond)
		}
		if _, err := s.wdb.ExecContext(ctx, `UPDATE agent_owners o SET agent_version = x.v, asterisk_version = x.ast, ami = x.m,
				live_channels = x.ch, live_calls = x.ca, status_at = x.t
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::timestamptz[])
				AS x(a, g, v, ast, m, ch, ca, t)
			WHERE o.agent_id = x.a AND o.generation = x.g`, ids, gens, versions, asterisks, amis, channels, calls, at); err != nil {
			return fmt.Errorf("update agent status: %w", err)
		}
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update agent status: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE agent_owners SET agent_version = $3, asterisk_version = $4, ami = $5,
		live_channels = $6, live_calls = $7, status_at = $8 WHERE agent_id = $1 AND generation = $2`)
	if err != nil {
		return fmt.Errorf("update agent status: %w", err)
	}
	defer stmt.Close()
	for _, st := range sts {
		if _, err := stmt.ExecContext(ctx, st.AgentID, st.Generation, cleanText(st.AgentVersion), cleanText(st.AsteriskVersion),
			cleanText(st.AMI), st.LiveChannels, st.LiveCalls, s.d.timeArg(st.StatusAt)); err != nil {
			return fmt.Errorf("update agent %s status: %w", st.AgentID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update agent status: commit: %w", err)
	}
	return nil
}

const ownerColumns = `agent_id, COALESCE(replica_id, ''), generation, session_id, since, hostname, agent_version, protocol,
	asterisk_version, ami, live_channels, live_calls, status_at`

func scanOwner(row interface{ Scan(...any) error }) (Owner, error) {
	var o Owner
	err := row.Scan(&o.AgentID, &o.ReplicaID, &o.Generation, &o.SessionID, dbTime{&o.Since}, &o.Hostname, &o.AgentVersion,
		&o.Protocol, &o.AsteriskVersion, &o.AMI, &o.LiveChannels, &o.LiveCalls, dbTime{&o.StatusAt})
	return o, err
}

// OwnerOf returns the agent's ownership row (ReplicaID empty when nobody
// holds it), or ErrNotFound if it never connected.
func (s *Store) OwnerOf(ctx context.Context, agentID string) (Owner, error) {
	o, err := scanOwner(s.db.QueryRowContext(ctx, `SELECT `+ownerColumns+` FROM agent_owners WHERE agent_id = $1`, agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return Owner{}, fmt.Errorf("owner of agent %s: %w", agentID, ErrNotFound)
	}
	if err != nil {
		return Owner{}, fmt.Errorf("owner of agent %s: %w", agentID, err)
	}
	return o, nil
}

// HeldAgents lists the agents held by the given replicas (the live ones),
// by agent id.
func (s *Store) HeldAgents(ctx context.Context, replicaIDs []string) ([]Owner, error) {
	if len(replicaIDs) == 0 {
		return nil, nil
	}
	args, in := inList(nil, replicaIDs)
	rows, err := s.db.QueryContext(ctx, `SELECT `+ownerColumns+` FROM agent_owners WHERE replica_id `+in+` ORDER BY agent_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list agent owners: %w", err)
	}
	defer rows.Close()
	var out []Owner
	for rows.Next() {
		o, err := scanOwner(rows)
		if err != nil {
			return nil, fmt.Errorf("list agent owners: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
