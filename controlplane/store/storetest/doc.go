// Package storetest opens real stores for tests, on both engines: a fresh
// SQLite file per test, and a fresh database per test on a real PostgreSQL
// server, so one suite runs unchanged against both.
//
// PostgreSQL comes from the environment variable SWITCHBOARD_TEST_POSTGRES
// (a superuser DSN, as exported by `source scripts/pg.sh; pg_start`); when it
// is unset, the first test that needs PostgreSQL starts a throwaway server
// (initdb + postgres, as the postgres user when running as root) that lives
// until the test binary ends. Either way, a package using OpenPostgres or
// ForEachEngine must route its TestMain through Main:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
//
// Main stops the throwaway server and removes its files. When PostgreSQL
// cannot be found or started, tests fail with a message saying to run
// `bash scripts/test.sh`; they never skip.
//
// Only test code may import this package.
package storetest
