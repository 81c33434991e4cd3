package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// systemConfig is the installed control plane's config file (the
// package's): admin commands read its db when no --db, SWITCHBOARD_DB or
// --config says otherwise. A variable so tests can point it elsewhere.
var systemConfig = "/etc/switchboard/switchboard.conf"

// adminFlags are the flags every admin command shares: where the store
// is, and how to print.
type adminFlags struct {
	config, db string
	json       bool
}

func (a *adminFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.db, "db", "", "the store: sqlite:`PATH` or postgres://… (default: the config file's db, else "+controlplane.DefaultDB+")")
	fs.StringVar(&a.config, "config", "", "read db from this control plane config `FILE` (default: "+systemConfig+" when it exists)")
	fs.BoolVar(&a.json, "json", false, "print JSON")
	completeFiles(fs, "config")
}

// storeChoice is the database an admin command uses and why.
type storeChoice struct {
	dsn string
	// from says where the choice came from, for the operator: "--db",
	// "SWITCHBOARD_DB", a config file's path, or "the built-in default".
	from string
	// named: the operator (or a config file) named this store; the
	// built-in default is not named.
	named bool
}

// storeMode is what a command may do when the SQLite file does not exist.
type storeMode int

const (
	// mustExist: reading, revoking, or adding to an enterprise needs a
	// store that already holds data; never create one.
	mustExist storeMode = iota
	// mayCreate: `enterprise create` starts a new store, but only one
	// the operator named (never ./switchboard.db by accident), and says so.
	mayCreate
)

// choose finds the store: --db, then SWITCHBOARD_DB, then the db line of
// --config, then that of the system config file when it exists, then the
// built-in default — the same precedence as `switchboard serve`.
func (a *adminFlags) choose(fs *pflag.FlagSet) (storeChoice, error) {
	envName := flagfile.EnvName(envPrefix, "db")
	if fs.Changed("db") {
		return storeChoice{dsn: a.db, from: "--db", named: true}, nil
	}
	if v, ok := os.LookupEnv(envName); ok {
		return storeChoice{dsn: v, from: envName, named: true}, nil
	}
	path := a.config
	if path == "" {
		if _, err := os.Stat(systemConfig); err != nil {
			return storeChoice{dsn: controlplane.DefaultDB, from: "the built-in default"}, nil
		}
		path = systemConfig
	}
	dsn, set, err := dbOfConfig(path)
	if err != nil {
		return storeChoice{}, err
	}
	if !set {
		return storeChoice{dsn: controlplane.DefaultDB, from: "the built-in default (" + path + " sets no db)"}, nil
	}
	return storeChoice{dsn: dsn, from: path, named: true}, nil
}

// dbOfConfig reads a serve config file as serve would (so an unknown
// option is the same error) and returns its db; set is false when the
// file has no db line.
func dbOfConfig(path string) (dsn string, set bool, err error) {
	serveFS := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var f serveFlags
	f.register(serveFS)
	file, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", false, fmt.Errorf("read %s: %w: run as root or as the service user (`runuser -u switchboard -- switchboard …`), or name the store with --db", path, err)
		}
		return "", false, fmt.Errorf("config file: %w", err)
	}
	defer file.Close()
	values, err := flagfile.Parse(file, path, serveFS)
	if err != nil {
		return "", false, usagef("%v", err)
	}
	dsn, set = values["db"]
	return dsn, set, nil
}

// open opens the chosen store. It never creates a SQLite file the
// operator did not ask for: see storeMode.
func (c storeChoice) open(ctx context.Context, e *env, mode storeMode, quiet bool) (*store.Store, error) {
	path, isFile := sqliteFile(c.dsn)
	fresh := false
	if isFile {
		abs, err := filepath.Abs(path)
		if err == nil {
			path = abs
		}
		switch _, err := os.Stat(path); {
		case err == nil:
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("store %s: %w", path, err)
		case mode == mustExist:
			return nil, fmt.Errorf("no store at %s (from %s)%s", path, c.from, c.hint())
		case !c.named:
			return nil, fmt.Errorf("no store at %s (from %s), and a new one is only created where you name it: --db sqlite:PATH or --config FILE", path, c.from)
		default:
			fresh = true
		}
	}
	if !quiet {
		fmt.Fprintf(e.stderr, "switchboard: using store %s (from %s)\n", c.display(path), c.from)
	}
	st, err := store.Open(ctx, c.dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if fresh {
		fmt.Fprintf(e.stderr, "switchboard: created a new, empty store at %s\n", path)
	}
	return st, nil
}

// hint says how to reach the real store when the default was used.
func (c storeChoice) hint() string {
	if c.named {
		return ""
	}
	return fmt.Sprintf(": name the control plane's store with --db or --config FILE (%s does not exist here)", systemConfig)
}

// display is the store for people: an absolute SQLite path, or a
// PostgreSQL URL without its password or query.
func (c storeChoice) display(absPath string) string {
	if absPath != "" {
		return "sqlite:" + absPath
	}
	if strings.HasPrefix(c.dsn, "sqlite:") {
		return c.dsn
	}
	u, err := url.Parse(c.dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		return "(unparsable DSN)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// sqliteFile is the file of a sqlite: DSN; ok is false for PostgreSQL
// and for the in-memory database.
func sqliteFile(dsn string) (string, bool) {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok || path == "" || path == ":memory:" {
		return "", false
	}
	return path, true
}
