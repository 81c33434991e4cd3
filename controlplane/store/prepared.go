package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// stmtCache keeps the prepared statements of the hot queries (API key and
// agent lookups, event storage). The pure-Go SQLite spends about as long
// parsing a small query as running it; database/sql re-prepares a cached
// statement on each pool connection once, then reuses it.
type stmtCache struct {
	mu sync.Mutex
	m  map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// queryRow runs a cached statement on db (s.db or s.wdb).
func (s *Store) queryRow(ctx context.Context, db *sql.DB, query string, args ...any) *sql.Row {
	st, err := s.stmt(ctx, db, query)
	if err != nil {
		// A Row carrying the error: callers handle it where they Scan.
		return db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a cached statement on db.
func (s *Store) query(ctx context.Context, db *sql.DB, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, db, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// txStmt is query's statement bound to tx: the one prepareWrites cached,
// else prepared in tx for tx alone. It never prepares on the pool: on
// SQLite the write pool has one connection, which tx holds, so that would
// wait forever.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	st, ok := s.stmts.m[stmtKey{s.wdb, query}]
	s.stmts.mu.Unlock()
	if ok {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st, nil
}

// txQueryRow runs query's statement (txStmt) in tx. A failed prepare
// comes out of Scan: running the query again in tx would only report
// that PostgreSQL aborted the transaction.
func (s *Store) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) interface{ Scan(...any) error } {
	st, err := s.txStmt(ctx, tx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// errRow is a row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// txExec runs query's statement (txStmt) in tx.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	st, err := s.txStmt(ctx, tx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, args...)
	return err
}

// prepareWrites prepares the statements of the event transaction and the
// audit writer on the write pool, while no transaction holds its
// connection (at open): each runs for every event batch or API request.
func (s *Store) prepareWrites(ctx context.Context) error {
	for _, q := range []string{s.selectAckedForUpdate(), insertEventSQL, insertEventSeqSQL, advanceEventSeqSQL,
		advanceAckedSQL, callUpsertOneSQL, listWebhooksSQL, insertDeliverySQL,
		insertAuditIntentSQL, deleteAuditIntentSQL, insertAuditSQL} {
		if _, err := s.stmt(ctx, s.wdb, q); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) stmt(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{db, query}
	s.stmts.mu.Lock()
	st, ok := s.stmts.m[k]
	s.stmts.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if prev, ok := s.stmts.m[k]; ok { // another caller won the race
		st.Close()
		return prev, nil
	}
	if s.stmts.m == nil {
		s.stmts.m = map[stmtKey]*sql.Stmt{}
	}
	s.stmts.m[k] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}
