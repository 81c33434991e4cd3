package store

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// Queries use $N placeholders on SQLite too; this pins the driver
// behaviour that makes it correct (see dialect.go).
func TestSQLiteDollarPlaceholders(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (a TEXT, b TEXT, n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	// Out of order, and $2 used twice.
	if _, err := db.ExecContext(ctx, `INSERT INTO t (a, b, n) VALUES ($2, $1, $3)`, "B", "A", 7); err != nil {
		t.Fatal(err)
	}
	var a, b string
	err = db.QueryRowContext(ctx, `SELECT a, b FROM t WHERE a = $2 AND b = $1 AND n = $3 AND a = $2`, "B", "A", 7).Scan(&a, &b)
	if err != nil || a != "A" || b != "B" {
		t.Fatalf("got a=%q b=%q err=%v; want a=A b=B", a, b, err)
	}
}

func TestExpandMigrations(t *testing.T) {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("loadMigrations: %d, %v", len(ms), err)
	}
	for _, d := range []dialect{sqliteDialect, postgresDialect} {
		for _, m := range ms {
			out, err := d.expand(m.sql)
			if err != nil || strings.Contains(out, "{{") {
				t.Errorf("%s %04d: %v", d.name, m.version, err)
			}
		}
		if _, err := d.expand("x {{NOPE}}"); err == nil {
			t.Errorf("%s: unknown placeholder accepted", d.name)
		}
	}
}

func TestTimeRoundTrip(t *testing.T) {
	in := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3*3600))
	want := in.UTC().Truncate(time.Microsecond)
	s, ok := sqliteDialect.timeArg(in).(string)
	if !ok || s != "2026-01-02T00:04:05.000006Z" {
		t.Fatalf("sqlite timeArg = %v", sqliteDialect.timeArg(in))
	}
	var got time.Time
	if err := (dbTime{&got}).Scan(s); err != nil || !got.Equal(want) {
		t.Fatalf("scan %q = %v, %v", s, got, err)
	}
	if err := (dbTime{&got}).Scan(nil); err != nil || !got.IsZero() {
		t.Fatalf("scan NULL = %v, %v", got, err)
	}
	if postgresDialect.timeArg(time.Time{}) != nil || sqliteDialect.timeArg(time.Time{}) != nil {
		t.Fatal("zero time is not NULL")
	}
	// Fixed width: text order is time order.
	early := sqliteDialect.timeArg(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).(string)
	late := sqliteDialect.timeArg(time.Date(2026, 1, 1, 0, 0, 0, 500000000, time.UTC)).(string)
	if !(early < late) || len(early) != len(late) {
		t.Fatalf("%q vs %q", early, late)
	}
}
