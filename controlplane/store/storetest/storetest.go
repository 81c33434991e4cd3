package storetest

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Engines names the engines ForEachEngine runs, in order.
var Engines = []string{"sqlite", "postgres"}

// ForEachEngine runs fn as a subtest on a fresh SQLite store and on a fresh
// PostgreSQL store ("sqlite" and "postgres").
func ForEachEngine(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) { fn(t, OpenEngine(t, engine)) })
	}
}

// BenchEachEngine is ForEachEngine for benchmarks. The store is opened
// before fn runs; fn resets the timer after its own setup.
func BenchEachEngine(b *testing.B, fn func(b *testing.B, s *store.Store)) {
	b.Helper()
	for _, engine := range Engines {
		b.Run(engine, func(b *testing.B) { fn(b, OpenEngine(b, engine)) })
	}
}

// OpenEngine opens a fresh store on the named engine ("sqlite" or "postgres").
func OpenEngine(t testing.TB, engine string) *store.Store {
	t.Helper()
	switch engine {
	case "sqlite":
		return OpenSQLite(t)
	case "postgres":
		return OpenPostgres(t)
	}
	t.Fatalf("storetest: unknown engine %q (want one of %s)", engine, strings.Join(Engines, ", "))
	return nil
}

// SQLiteDSN returns the DSN of a new SQLite file in the test's temp dir.
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "switchboard.db")
}

// OpenSQLite opens a store on a new SQLite file, closed at test end.
func OpenSQLite(t testing.TB) *store.Store {
	t.Helper()
	return Open(t, SQLiteDSN(t))
}

// OpenPostgres opens a store on a new, empty PostgreSQL database that is
// dropped at test end.
func OpenPostgres(t testing.TB) *store.Store {
	t.Helper()
	return Open(t, PostgresDSN(t))
}

// Open opens a store on dsn with the test's logger and closes it at test end.
func Open(t testing.TB, dsn string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, Logger(t))
	if err != nil {
		t.Fatalf("storetest: open %s: %v", engineOf(dsn), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close store: %v", err)
		}
	})
	return s
}

func engineOf(dsn string) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return dsn
	}
	return "postgres database"
}

// Logger returns a logger writing to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
