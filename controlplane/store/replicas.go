package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Replica is one running control plane (`switchboard serve`) as its
// heartbeat row says.
type Replica struct {
	ID string
	// URL is how the other replicas reach it (--replica-url); empty for a
	// replica that runs alone and did not say.
	URL       string
	Hostname  string
	PID       int
	Version   string
	Clustered bool
	StartedAt time.Time
	// HeartbeatAt is its last beat, by the database's clock on
	// PostgreSQL (replicas on several hosts are compared on one clock).
	HeartbeatAt time.Time
}

// ErrReplicaConflict: RegisterReplica found a live replica that may not
// run beside the new one. The *ReplicaConflictError says which.
var ErrReplicaConflict = errors.New("another control plane replica is running on this database")

// ReplicaConflictError names the live replica that stopped a
// RegisterReplica.
type ReplicaConflictError struct {
	Live Replica
}

func (e *ReplicaConflictError) Error() string {
	return fmt.Sprintf("%v: replica %s at %s (host %s, pid %d, clustered %v, last heartbeat %s)", ErrReplicaConflict,
		e.Live.ID, orNone(e.Live.URL), orNone(e.Live.Hostname), e.Live.PID, e.Live.Clustered, e.Live.HeartbeatAt.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrReplicaConflict) true.
func (e *ReplicaConflictError) Is(target error) bool { return target == ErrReplicaConflict }

func orNone(s string) string {
	if s == "" {
		return "(no url)"
	}
	return s
}

// replicaLockKey serialises RegisterReplica's check-then-insert between
// replicas starting at once on PostgreSQL ("SwBdRepl").
const replicaLockKey int64 = 0x537742645265706c

// nowSQL is the database's clock on PostgreSQL (replicas on several hosts
// compare heartbeats on one clock); on SQLite, one host, the store's.
func (s *Store) nowSQL(arg int) string {
	if s.d.name == dialectPostgres {
		return "clock_timestamp()"
	}
	return fmt.Sprintf("$%d", arg)
}

// nowArg is the value nowSQL's placeholder takes on SQLite (ignored on
// PostgreSQL, where the placeholder is not in the query and must not be
// bound).
func (s *Store) nowArgs() []any {
	if s.d.name == dialectPostgres {
		return nil
	}
	return []any{s.d.timeArg(s.now())}
}

// RegisterReplica inserts r's heartbeat row, unless a live replica (one
// that beat within deadAfter) forbids it: any other live replica when r
// is not clustered, or a live unclustered one when it is; that is a
// *ReplicaConflictError. A live row with r's own URL is r's predecessor
// on the same address (it cannot still serve there) and is replaced.
// Rows dead for long are deleted on the way.
func (s *Store) RegisterReplica(ctx context.Context, r Replica, deadAfter time.Duration) error {
	if r.ID == "" {
		return invalid("replica id", "must not be empty")
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("register replica: %w", err)
	}
	defer tx.Rollback()
	if s.d.name == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, replicaLockKey); err != nil {
			return fmt.Errorf("register replica: lock: %w", err)
		}
	}
	live, err := s.liveReplicas(ctx, tx, deadAfter)
	if err != nil {
		return fmt.Errorf("register replica: %w", err)
	}
	for _, o := range live {
		if o.ID == r.ID || (r.URL != "" && o.URL == r.URL) {
			continue
		}
		if !r.Clustered || !o.Clustered {
			return &ReplicaConflictError{Live: o}
		}
	}
	// Rows of replicas dead for a day are history nobody reads.
	if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE heartbeat_at < $1 OR (url <> '' AND url = $2)`,
		s.d.timeArg(s.now().Add(-24*time.Hour)), r.URL); err != nil {
		return fmt.Errorf("register replica: prune: %w", err)
	}
	args := []any{r.ID, r.URL, r.Hostname, r.PID, r.Version, r.Clustered}
	args = append(args, s.nowArgs()...)
	q := `INSERT INTO replicas (id, url, hostname, pid, version, clustered, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $6, ` + s.nowSQL(7) + `, ` + s.nowSQL(7) + `)`
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("register replica: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("register replica: commit: %w", err)
	}
	return nil
}

// HeartbeatReplica records that replica id is alive now. ErrNotFound: its
// row is gone (deregistered, or deleted as dead long ago).
func (s *Store) HeartbeatReplica(ctx context.Context, id string) error {
	args := append([]any{id}, s.nowArgs()...)
	res, err := s.wdb.ExecContext(ctx, `UPDATE replicas SET heartbeat_at = `+s.nowSQL(2)+` WHERE id = $1`, args...)
	if err != nil {
		return fmt.Errorf("replica heartbeat: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("replica %s: %w", id, ErrNotFound)
	}
	return nil
}

// DeregisterReplica deletes replica id's row and ends its agents'
// ownership: a replica that stopped holds no tunnel.
func (s *Store) DeregisterReplica(ctx context.Context, id string) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("deregister replica: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE agent_owners SET replica_id = NULL WHERE replica_id = $1`, id); err != nil {
		return fmt.Errorf("deregister replica: release agents: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM replicas WHERE id = $1`, id); err != nil {
		return fmt.Errorf("deregister replica: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("deregister replica: commit: %w", err)
	}
	return nil
}

// LiveReplicas lists the replicas that beat within deadAfter, by id.
func (s *Store) LiveReplicas(ctx context.Context, deadAfter time.Duration) ([]Replica, error) {
	return s.liveReplicas(ctx, s.db, deadAfter)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) liveReplicas(ctx context.Context, q querier, deadAfter time.Duration) ([]Replica, error) {
	var (
		cond string
		args []any
	)
	if s.d.name == dialectPostgres {
		cond = `heartbeat_at > clock_timestamp() - make_interval(secs => $1)`
		args = []any{deadAfter.Seconds()}
	} else {
		cond = `heartbeat_at > $1`
		args = []any{s.d.timeArg(s.now().Add(-deadAfter))}
	}
	rows, err := q.QueryContext(ctx, `SELECT id, url, hostname, pid, version, clustered, started_at, heartbeat_at
		FROM replicas WHERE `+cond+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		if err := rows.Scan(&r.ID, &r.URL, &r.Hostname, &r.PID, &r.Version, &r.Clustered, dbTime{&r.StartedAt}, dbTime{&r.HeartbeatAt}); err != nil {
			return nil, fmt.Errorf("list replicas: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
