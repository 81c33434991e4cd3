package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations are migrations/NNNN_name.sql, numbered from 0001 without gaps,
// written once the engine-specific types are replaced by placeholders (see
// dialect.go). To change the schema, add the next number; never edit an
// applied file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrationLockKey is the PostgreSQL advisory lock that serialises
// migrations between replicas starting at once ("SwBdMigr").
const migrationLockKey int64 = 0x537742644d696772

const schemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at {{TIME}} NOT NULL
)`

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	ms := make([]migration, 0, len(names))
	for i, name := range names {
		base := path.Base(name)
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		if v != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %04d (no gaps, no duplicates)", base, i+1)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(rest, ".sql"), sql: string(body)})
	}
	return ms, nil
}

// MigrationsKnown is the number of migrations this build carries; a
// ready database has MigrationsApplied equal to it.
func MigrationsKnown() int {
	ms, err := loadMigrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// MigrationsApplied counts the migrations recorded in the database.
func (s *Store) MigrationsApplied(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count migrations: %w", err)
	}
	return n, nil
}

// migrate applies pending migrations, each in its own transaction. Every
// migration re-checks schema_migrations inside its transaction, and on
// PostgreSQL the whole run holds an advisory lock, so processes starting
// together apply each migration exactly once.
func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()

	if s.d.name == dialectPostgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("migrate: take advisory lock: %w", err)
		}
		defer func() {
			// Unlock even if ctx is done: the connection returns to the pool.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
				err = errors.Join(err, fmt.Errorf("migrate: release advisory lock: %w", uerr))
			}
		}()
	}

	ddl, err := s.d.expand(schemaMigrationsDDL)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var newest sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if newest.Valid && int(newest.Int64) > len(ms) {
		return fmt.Errorf("%w: database at migration %d, this build knows %d", ErrSchemaTooNew, newest.Int64, len(ms))
	}
	for _, m := range ms {
		if err := s.applyMigration(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, conn *sql.Conn, m migration) error {
	body, err := s.d.expand(m.sql)
	if err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %04d_%s: begin: %w", m.version, m.name, err)
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.version).Scan(&done); err != nil {
		return fmt.Errorf("migration %04d_%s: check: %w", m.version, m.name, err)
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, s.d.timeArg(s.now())); err != nil {
		return fmt.Errorf("migration %04d_%s: record: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %04d_%s: commit: %w", m.version, m.name, err)
	}
	s.log.Info("applied migration", "version", m.version, "name", m.name)
	return nil
}
