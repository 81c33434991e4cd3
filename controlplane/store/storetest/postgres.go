package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PostgresEnv names the environment variable holding a superuser DSN of a
// PostgreSQL server to create test databases on.
const PostgresEnv = "SWITCHBOARD_TEST_POSTGRES"

// Limits of the throwaway server's life cycle.
const (
	serverStartTimeout = 60 * time.Second
	serverStopTimeout  = 15 * time.Second
	dbOpTimeout        = 30 * time.Second
)

const howToFix = "run `bash scripts/test.sh` (it installs PostgreSQL and exports " + PostgresEnv +
	"), or set " + PostgresEnv + " to a superuser DSN like postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	mainCalled atomic.Bool

	serverOnce sync.Once
	server     *pgServer
	serverErr  error

	adminMu sync.Mutex
	admin   *sql.DB // to the "postgres" database, for CREATE/DROP DATABASE
	// createOptions is appended to CREATE DATABASE. From PostgreSQL 15 it
	// asks for FILE_COPY: the default WAL_LOG strategy writes the whole
	// template through the WAL, about three times slower here.
	createOptions string
)

// Main runs the package's tests, then drops the admin connection and
// stops the PostgreSQL server this package started, if any. Call it from
// TestMain.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit: it returns the tests' exit code, for a
// TestMain that has more to clean up.
func Run(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func shutdown() error {
	adminMu.Lock()
	defer adminMu.Unlock()
	var err error
	if admin != nil {
		err = admin.Close()
		admin = nil
	}
	if server != nil {
		err = errors.Join(err, server.stop())
		server = nil
	}
	return err
}

// PostgresDSN creates a new, uniquely named database, drops it at test
// end, and returns its DSN.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("storetest: PostgreSQL tests need the package's TestMain to call storetest.Main:\n" +
			"\tfunc TestMain(m *testing.M) { storetest.Main(m) }")
	}
	serverDSN := os.Getenv(PostgresEnv)
	if serverDSN == "" {
		serverOnce.Do(func() { server, serverErr = startServer() })
		if serverErr != nil {
			t.Fatalf("storetest: PostgreSQL is needed and could not be started: %v\nTo fix: %s", serverErr, howToFix)
		}
		serverDSN = server.dsn
	}
	u, err := url.Parse(serverDSN)
	if err != nil {
		t.Fatalf("storetest: %s is not a URL DSN; %s", PostgresEnv, howToFix)
	}
	db, opts, err := adminDB(serverDSN)
	if err != nil {
		t.Fatalf("storetest: %v\nTo fix: %s", err, howToFix)
	}
	name := "sbtest_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), dbOpTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+opts); err != nil {
		t.Fatalf("storetest: create database on %s: %v\nTo fix: %s", u.Redacted(), err, howToFix)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dbOpTimeout)
		defer cancel()
		// FORCE: a test that leaked a connection must not keep its database.
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func adminDB(dsn string) (*sql.DB, string, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if admin == nil {
		db, opts, err := openAdmin(dsn)
		if err != nil {
			return nil, "", err
		}
		admin, createOptions = db, opts
	}
	return admin, createOptions, nil
}

func openAdmin(dsn string) (*sql.DB, string, error) {
	// "pgx" is registered by the store package, which keeps the import of
	// pgx itself there.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, "", fmt.Errorf("open admin connection: %w", err)
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), dbOpTimeout)
	defer cancel()
	var version int
	err = db.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version)
	if err != nil {
		db.Close()
		return nil, "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if version < 130000 {
		db.Close()
		return nil, "", fmt.Errorf("PostgreSQL %d is too old: tests need 13 or newer (DROP DATABASE … WITH (FORCE))", version/10000)
	}
	opts := ""
	if version >= 150000 {
		opts = " STRATEGY = FILE_COPY"
	}
	return db, opts, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pgServer is a throwaway cluster: postgres running as a child process on
// 127.0.0.1 and a unix socket in its own temp dir, with trust auth.
type pgServer struct {
	dir  string
	dsn  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the postgres process has exited
}

// findPostgres returns the directory holding initdb and postgres: from
// PATH, else the newest /usr/lib/postgresql/*/bin (Debian's layout).
func findPostgres() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found on PATH or under /usr/lib/postgresql/*/bin")
}

func pgVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func startServer() (_ *pgServer, err error) {
	bin, err := findPostgres()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "switchboard-pg-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	// initdb and postgres refuse to run as root: run them as "postgres".
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a 'postgres' user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// Groups nil: drop root's supplementary groups too.
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// A port can be taken between choosing and binding it: try a few.
	var lastErr error
	for range 5 {
		s, err := launch(bin, dir, data, cred)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

var errPortTaken = errors.New("port taken")

// launch starts postgres on a free port and waits until it answers.
func launch(bin, dir, data string, cred *syscall.Credential) (*pgServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// Durability is worthless for a throwaway cluster; speed is not.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: if the test binary dies without running Main's cleanup,
	// the server goes with it (SIGQUIT: immediate shutdown).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &pgServer{
		dir:  dir,
		dsn:  fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		cmd:  cmd,
		done: make(chan struct{}),
	}
	go func() { cmd.Wait(); close(s.done) }()
	if err := s.waitReady(logPath); err != nil {
		s.halt()
		if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "Address already in use") {
			return nil, fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, err
	}
	return s, nil
}

func (s *pgServer) waitReady(logPath string) error {
	db, err := sql.Open("pgx", s.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(serverStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during startup: %s\n%s", s.cmd.ProcessState, tail(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %v\n%s", serverStartTimeout, err, tail(logPath))
		}
	}
}

// stop shuts the server down and removes the cluster's files.
func (s *pgServer) stop() error {
	s.halt()
	return os.RemoveAll(s.dir)
}

// halt asks for a fast shutdown and kills after serverStopTimeout.
func (s *pgServer) halt() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(serverStopTimeout):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// freePort picks a free port below the kernel's ephemeral range: ports
// in that range are handed to outgoing connections, and under a busy test
// run one is often taken again before postgres binds it.
func freePort() (int, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				lo = v
			}
		}
	}
	for range 50 {
		port := 10000 + mrand.IntN(lo-10000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free TCP port found on 127.0.0.1")
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "postgres log:\n\t" + strings.Join(lines, "\n\t")
}
