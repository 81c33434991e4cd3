package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestOpenRejectsBadDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, want string
	}{
		{"empty", "", "empty database DSN"},
		{"mysql", "mysql://root@localhost/db", `scheme "mysql"`},
		{"bare path", "/var/lib/switchboard.db", `scheme "(none)"`},
		{"sqlite without path", "sqlite:", "has no file path"},
		{"sqlite with query", "sqlite:/tmp/x.db?mode=ro", "must not contain"},
		{"postgres bad url", "postgres://u:p@host:port:x/db", "not a valid URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Open(context.Background(), tc.dsn, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) = %v, want error containing %q", tc.dsn, err, tc.want)
			}
			if strings.Contains(err.Error(), ":p@") {
				t.Errorf("error leaks the password: %v", err)
			}
			if tc.name != "sqlite with query" && tc.name != "sqlite without path" && tc.name != "postgres bad url" &&
				!strings.Contains(err.Error(), "sqlite:PATH") {
				t.Errorf("error does not list the accepted forms: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  store.Config
		want string
	}{
		{"ok", store.Config{DSN: "sqlite::memory:"}, ""},
		{"negative busy", store.Config{DSN: "sqlite::memory:", SQLiteBusyTimeout: -1}, "SQLiteBusyTimeout"},
		{"negative read conns", store.Config{DSN: "sqlite::memory:", SQLiteReadConns: -1}, "SQLiteReadConns"},
		{"negative pg conns", store.Config{DSN: "sqlite::memory:", PostgresMaxConns: -1}, "PostgresMaxConns"},
		{"negative idle", store.Config{DSN: "sqlite::memory:", ConnMaxIdleTime: -1}, "ConnMaxIdleTime"},
		{"bad dsn", store.Config{DSN: "oracle:x"}, "unsupported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMemorySQLite(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t, "sqlite::memory:")
	ctx := context.Background()
	if _, err := s.CreateEnterprise(ctx, "0367", "Acme"); err != nil {
		t.Fatal(err)
	}
	// One connection serves reads and writes, so the row is visible.
	if _, err := s.EnterpriseByNumber(ctx, "0367"); err != nil {
		t.Fatal(err)
	}
	if s.Dialect() != "sqlite" {
		t.Errorf("Dialect() = %q", s.Dialect())
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var dsn string
			if engine == "sqlite" {
				dsn = storetest.SQLiteDSN(t)
			} else {
				dsn = storetest.PostgresDSN(t)
			}
			s1 := storetest.Open(t, dsn)
			if s1.Dialect() != engine {
				t.Errorf("Dialect() = %q, want %q", s1.Dialect(), engine)
			}
			if _, err := s1.CreateEnterprise(ctx, "1", "Kept"); err != nil {
				t.Fatal(err)
			}
			s1.Close()
			s2 := storetest.Open(t, dsn) // re-open: nothing re-applied, data kept
			n, err := s2.MigrationsApplied(ctx)
			if err != nil || n != store.MigrationsKnown() || n < 1 {
				t.Fatalf("MigrationsApplied = %d, %v; want %d", n, err, store.MigrationsKnown())
			}
			if _, err := s2.EnterpriseByNumber(ctx, "1"); err != nil {
				t.Fatalf("data lost on re-open: %v", err)
			}
			if err := s2.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Replicas starting together must apply each migration once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			var dsn string
			if engine == "sqlite" {
				dsn = storetest.SQLiteDSN(t)
			} else {
				dsn = storetest.PostgresDSN(t)
			}
			const n = 4
			var wg sync.WaitGroup
			stores := make([]*store.Store, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { stores[i], errs[i] = store.Open(context.Background(), dsn, storetest.Logger(t)) })
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Errorf("open %d: %v", i, errs[i])
					continue
				}
				got, err := stores[i].MigrationsApplied(context.Background())
				if err != nil || got != store.MigrationsKnown() {
					t.Errorf("store %d: MigrationsApplied = %d, %v", i, got, err)
				}
				stores[i].Close()
			}
		})
	}
}

func TestClosedStoreFails(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		s.Close()
		if err := s.Ping(context.Background()); err == nil {
			t.Fatal("Ping after Close succeeded")
		}
		if _, err := s.ListEnterprises(context.Background()); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ListEnterprises after Close = %v, want a database error", err)
		}
	})
}

// A build must refuse a database migrated by a newer build.
func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var dsn, driver, source string
			if engine == "sqlite" {
				dsn = storetest.SQLiteDSN(t)
				driver, source = "sqlite", strings.TrimPrefix(dsn, "sqlite:")
			} else {
				dsn = storetest.PostgresDSN(t)
				driver, source = "pgx", dsn
			}
			storetest.Open(t, dsn).Close()
			raw, err := sql.Open(driver, source)
			if err != nil {
				t.Fatal(err)
			}
			_, err = raw.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', CURRENT_TIMESTAMP)`)
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(ctx, dsn, storetest.Logger(t))
			if !errors.Is(err, store.ErrSchemaTooNew) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
			}
		})
	}
}
