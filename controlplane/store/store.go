package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults for Config's zero values.
const (
	DefaultSQLiteBusyTimeout = 5 * time.Second
	DefaultSQLiteReadConns   = 4
	DefaultPostgresMaxConns  = 16
	DefaultConnMaxIdleTime   = 5 * time.Minute
)

// Config says which database to open and how to pool connections.
type Config struct {
	// DSN selects the engine:
	//   sqlite:PATH          an SQLite file, created if missing
	//   sqlite::memory:      a private in-memory database (tests)
	//   postgres://… or postgresql://…   a PostgreSQL server (pgx URL syntax)
	DSN string
	// Logger receives migration and lifecycle messages. Nil discards them.
	Logger *slog.Logger
	// SQLiteBusyTimeout is how long an SQLite statement waits for a lock
	// held by another process (another `switchboard` command on the same
	// file). Writers inside this process never wait on it: they queue for
	// the single write connection instead.
	SQLiteBusyTimeout time.Duration
	// SQLiteReadConns bounds the SQLite read-only pool.
	SQLiteReadConns int
	// PostgresMaxConns bounds the PostgreSQL pool.
	PostgresMaxConns int
	// ConnMaxIdleTime closes pooled connections idle this long (PostgreSQL
	// and the SQLite read pool).
	ConnMaxIdleTime time.Duration
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.SQLiteBusyTimeout == 0 {
		c.SQLiteBusyTimeout = DefaultSQLiteBusyTimeout
	}
	if c.SQLiteReadConns == 0 {
		c.SQLiteReadConns = DefaultSQLiteReadConns
	}
	if c.PostgresMaxConns == 0 {
		c.PostgresMaxConns = DefaultPostgresMaxConns
	}
	if c.ConnMaxIdleTime == 0 {
		c.ConnMaxIdleTime = DefaultConnMaxIdleTime
	}
	return c
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	if _, _, err := parseDSN(c.DSN); err != nil {
		return err
	}
	if c.SQLiteBusyTimeout < 0 {
		return fmt.Errorf("store config: SQLiteBusyTimeout must not be negative, got %s", c.SQLiteBusyTimeout)
	}
	if c.SQLiteReadConns < 0 {
		return fmt.Errorf("store config: SQLiteReadConns must not be negative, got %d", c.SQLiteReadConns)
	}
	if c.PostgresMaxConns < 0 {
		return fmt.Errorf("store config: PostgresMaxConns must not be negative, got %d", c.PostgresMaxConns)
	}
	if c.ConnMaxIdleTime < 0 {
		return fmt.Errorf("store config: ConnMaxIdleTime must not be negative, got %s", c.ConnMaxIdleTime)
	}
	return nil
}

const acceptedDSNs = "sqlite:PATH (e.g. sqlite:/var/lib/switchboard/switchboard.db), " +
	"sqlite::memory: (tests), or postgres://USER:PASSWORD@HOST:PORT/DATABASE (also postgresql://)"

// parseDSN returns the dialect and the driver's data source name.
func parseDSN(dsn string) (dialect, string, error) {
	switch {
	case dsn == "":
		return dialect{}, "", fmt.Errorf("store: empty database DSN; use %s", acceptedDSNs)
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return dialect{}, "", fmt.Errorf("store: %q has no file path; use %s", dsn, acceptedDSNs)
		}
		// The driver reads its own options from a query string; a path with
		// '?' or '#' would be cut there and silently open another file.
		if strings.ContainsAny(path, "?#") {
			return dialect{}, "", fmt.Errorf("store: SQLite path %q must not contain '?' or '#'", path)
		}
		return sqliteDialect, path, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			// url.Error would echo the DSN, password included.
			return dialect{}, "", errors.New("store: PostgreSQL DSN is not a valid URL")
		}
		return postgresDialect, dsn, nil
	default:
		scheme, _, ok := strings.Cut(dsn, ":")
		if !ok || strings.ContainsAny(scheme, "/@ ") {
			scheme = "(none)"
		}
		return dialect{}, "", fmt.Errorf("store: unsupported database DSN scheme %q; use %s", scheme, acceptedDSNs)
	}
}

// Store is the control plane's database. It is safe for concurrent use.
type Store struct {
	// Now is the clock for every timestamp the store writes. Tests replace
	// it before use; it must not be changed while the Store is in use.
	Now func() time.Time

	d   dialect
	log *slog.Logger
	// dsn opens connections outside the pools (Listen); PostgreSQL only.
	dsn string
	// db serves reads. wdb serves writes and transactions. They are the same
	// pool on PostgreSQL; on SQLite wdb holds one connection, so this
	// process's writers queue in Go rather than race for SQLite's single
	// write lock and fail with SQLITE_BUSY.
	db  *sql.DB
	wdb *sql.DB
	// stmts: prepared statements of hot queries (prepared.go).
	stmts stmtCache

	// The audit group-commit writer (audit.go): started by the first
	// InsertAudit, stopped and waited for by Close.
	auditq      chan auditReq
	auditStop   chan struct{}
	auditMu     sync.RWMutex // auditClosed, and sends on auditq
	auditClosed bool
	auditOnce   sync.Once
	auditWG     sync.WaitGroup // the audit and event writers
	// The SQLite group commit of agent events (events.go), started by the
	// first StoreAgentEvents; it stops with auditStop.
	eventq    chan eventReq
	eventOnce sync.Once
	closeOnce sync.Once
}

// auditQueue is how many audit writes may wait for the writer; past it
// a request waits for room (back-pressure), so rows handed over without
// waiting (QueueAudit) cannot pile up without bound.
const auditQueue = 4096

// Open opens the database named by dsn (see Config.DSN) and applies any
// pending migrations.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	return New(ctx, Config{DSN: dsn, Logger: logger})
}

// New opens the database described by cfg and applies pending migrations.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, source, _ := parseDSN(cfg.DSN)
	s := &Store{Now: time.Now, d: d, log: cfg.Logger.With("component", "store", "dialect", d.name),
		auditq: make(chan auditReq, auditQueue), auditStop: make(chan struct{}), eventq: make(chan eventReq)}
	var err error
	if d.name == dialectSQLite {
		err = s.openSQLite(source, cfg)
	} else {
		err = s.openPostgres(source, cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if d.name == dialectSQLite {
		if err := s.useWAL(ctx, cfg.SQLiteBusyTimeout); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareWrites(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare statements: %w", err)
	}
	return s, nil
}

func (s *Store) openSQLite(path string, cfg Config) error {
	// _txlock=immediate: a transaction takes the write lock at BEGIN, so it
	// can wait for it (busy_timeout) instead of failing when it first writes.
	// synchronous=FULL: an acknowledged write survives power loss.
	// WAL is switched on once in useWAL, not per connection: the switch
	// needs an exclusive lock and fails at once (no busy wait) when another
	// process is opening the same new file.
	opts := fmt.Sprintf("_txlock=immediate&_busy_timeout=%d&_foreign_keys=1&_synchronous=FULL",
		cfg.SQLiteBusyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", path+"?"+opts)
	if err != nil {
		return fmt.Errorf("open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if path == ":memory:" {
		// Each connection would get its own empty database: one connection
		// serves everything, and it is never closed while the Store lives.
		s.db, s.wdb = w, w
		return nil
	}
	// Readers never BEGIN IMMEDIATE (that would take the write lock), and
	// query_only makes a write slipping onto this pool fail loudly.
	ropts := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=1&_query_only=1", cfg.SQLiteBusyTimeout.Milliseconds())
	r, err := sql.Open("sqlite", path+"?"+ropts)
	if err != nil {
		w.Close()
		return fmt.Errorf("open sqlite: %w", err)
	}
	r.SetMaxOpenConns(cfg.SQLiteReadConns)
	r.SetMaxIdleConns(cfg.SQLiteReadConns)
	r.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	s.db, s.wdb = r, w
	return nil
}

// useWAL puts the SQLite file in write-ahead-log mode (persistent, so once
// per file is enough), retrying while another process holds the lock.
// WAL lets readers run alongside the writer.
func (s *Store) useWAL(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	backoff := 5 * time.Millisecond
	for {
		var mode string
		err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if mode != "wal" && mode != "memory" { // an in-memory database has no journal file
				return fmt.Errorf("sqlite: journal mode is %q, WAL could not be enabled", mode)
			}
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("sqlite: enable WAL: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sqlite: enable WAL: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func (s *Store) openPostgres(dsn string, cfg Config) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return errors.New("open postgres: invalid DSN") // the driver's error may quote the password
	}
	db.SetMaxOpenConns(cfg.PostgresMaxConns)
	db.SetMaxIdleConns(cfg.PostgresMaxConns)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	s.db, s.wdb, s.dsn = db, db, dsn
	return nil
}

// Dialect names the engine: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.wdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.d.name, err)
	}
	if s.db != s.wdb {
		if err := s.db.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s read pool: %w", s.d.name, err)
		}
	}
	return nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.auditMu.Lock()
		s.auditClosed = true
		s.auditMu.Unlock()
		close(s.auditStop)
		s.auditWG.Wait()
	})
	err := s.stmts.close()
	err = errors.Join(err, s.wdb.Close())
	if s.db != s.wdb {
		err = errors.Join(err, s.db.Close())
	}
	return err
}

// now is the store's clock at the precision both engines keep.
func (s *Store) now() time.Time {
	return s.Now().UTC().Truncate(time.Microsecond)
}
