package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setSystemConfig points the admin commands at a test's own "installed"
// config file for the rest of the test.
func setSystemConfig(t *testing.T, path string) {
	t.Helper()
	prev := systemConfig
	systemConfig = path
	t.Cleanup(func() { systemConfig = prev })
}

func sh(args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = run(context.Background(), args, &out, &errw)
	return code, out.String(), errw.String()
}

// filesIn lists a directory's entries, to see what a command left there.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// On a machine without the package, in an empty directory: nothing reads
// or creates ./switchboard.db behind the operator's back.
func TestAdminNeverCreatesAStoreByAccident(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"agent list", []string{"agent", "list"}, 1, "no store at " + filepath.Join(cwd, "switchboard.db") + " (from the built-in default): name the control plane's store with --db or --config"},
		{"enterprise --help", []string{"enterprise", "--help"}, 0, ""},
		{"enterprise list --help", []string{"enterprise", "list", "--help"}, 0, ""},
		{"apikey list", []string{"apikey", "list", "--enterprise", "0367"}, 1, "no store at"},
		{"agent create", []string{"agent", "create", "--enterprise", "0367", "--name", "pbx"}, 1, "no store at"},
		{"agent revoke", []string{"agent", "revoke", "agt_x"}, 1, "no store at"},
		{"enterprise create needs a named store", []string{"enterprise", "create", "--number", "0367", "--name", "june"}, 1, "a new one is only created where you name it: --db sqlite:PATH or --config FILE"},
		{"usage mistakes come before the store", []string{"enterprise", "create", "--number", "0367"}, 2, "--name is required"},
		{"json: the same error", []string{"enterprise", "list", "--json"}, 1, "no store at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := sh(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d containing %q", code, stderr, tc.code, tc.want)
			}
			if left := filesIn(t, cwd); len(left) > 0 {
				t.Fatalf("left %v in the working directory", left)
			}
		})
	}
}

// `enterprise create` makes a new store only where it was named, and says so.
func TestAdminCreatesANamedStoreAndSaysSo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new.db")
	code, stdout, stderr := sh("enterprise", "create", "--db", "sqlite:"+path, "--number", "0367", "--name", "june")
	if code != 0 || !strings.Contains(stdout, "Created enterprise 0367") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if want := "switchboard: created a new, empty store at " + path + "\n"; !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q does not say %q", stderr, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// The second time, the store exists: no such line.
	_, _, stderr = sh("enterprise", "create", "--db", "sqlite:"+path, "--number", "0368", "--name", "july")
	if strings.Contains(stderr, "created a new") {
		t.Fatalf("said it created the store twice: %q", stderr)
	}
}

// The store is found like serve finds it, and named on stderr.
func TestAdminFindsTheStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(t.TempDir())
	mk := func(name, number string) string {
		t.Helper()
		dsn := "sqlite:" + filepath.Join(dir, name)
		if code, out, errOut := sh("enterprise", "create", "--db", dsn, "--number", number, "--name", name); code != 0 {
			t.Fatalf("seed %s: %s%s", name, out, errOut)
		}
		return dsn
	}
	systemDB, configDB, envDB, flagDB := mk("system.db", "0001"), mk("config.db", "0002"), mk("env.db", "0003"), mk("flag.db", "0004")
	conf := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	system := conf("system.conf", "# the package's file\nlisten = 127.0.0.1:8080\ndb = "+systemDB+"\n")
	other := conf("other.conf", "db = "+configDB+"\n")
	noDB := conf("nodb.conf", "listen = 127.0.0.1:8080\n")
	typo := conf("typo.conf", "db = "+configDB+"\nlisen = x\n")
	setSystemConfig(t, system)

	tests := []struct {
		name   string
		env    string
		args   []string
		code   int
		number string // the enterprise listed: which store was read
		stderr string
	}{
		{"the installed config file", "", nil, 0, "0001", "switchboard: using store " + systemDB + " (from " + system + ")\n"},
		{"--config", "", []string{"--config", other}, 0, "0002", "(from " + other + ")"},
		{"SWITCHBOARD_DB beats the config files", envDB, []string{"--config", other}, 0, "0003", "(from SWITCHBOARD_DB)"},
		{"--db beats everything", envDB, []string{"--db", flagDB}, 0, "0004", "(from --db)"},
		{"a config file without db", "", []string{"--config", noDB}, 1, "", "no store at"},
		{"a typo in the config file", "", []string{"--config", typo}, 2, "", `typo.conf:2: unknown option "lisen"`},
		{"a missing config file", "", []string{"--config", filepath.Join(dir, "nope.conf")}, 1, "", "nope.conf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("SWITCHBOARD_DB", tc.env)
			}
			code, stdout, stderr := sh(append([]string{"enterprise", "list"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if tc.number != "" && (!strings.Contains(stdout, tc.number) || strings.Count(stdout, "\n") != 2) {
				t.Fatalf("listed\n%s\nwant only enterprise %s", stdout, tc.number)
			}
		})
	}

	// --json: stdout is one JSON document and stderr stays quiet.
	code, stdout, stderr := sh("enterprise", "list", "--json")
	var v struct {
		Enterprises []struct{ Number string } `json:"enterprises"`
	}
	if code != 0 || stderr != "" || json.Unmarshal([]byte(stdout), &v) != nil || len(v.Enterprises) != 1 || v.Enterprises[0].Number != "0001" {
		t.Fatalf("--json: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestStoreDisplayHidesSecrets(t *testing.T) {
	tests := []struct{ dsn, abs, want string }{
		{"sqlite:x.db", "/var/lib/switchboard/x.db", "sqlite:/var/lib/switchboard/x.db"},
		{"sqlite::memory:", "", "sqlite::memory:"},
		{"postgres://sb:s3cret@db.example.com:5432/switchboard?sslmode=verify-full&password=other", "", "postgres://sb@db.example.com:5432/switchboard"},
		{"postgresql://db.example.com/sb", "", "postgresql://db.example.com/sb"},
	}
	for _, tc := range tests {
		got := storeChoice{dsn: tc.dsn}.display(tc.abs)
		if got != tc.want {
			t.Errorf("display(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
		if strings.Contains(got, "s3cret") || strings.Contains(got, "other") {
			t.Errorf("display(%q) shows a secret: %q", tc.dsn, got)
		}
	}
}
