package asterisktest

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables that ask for a real Asterisk.
const (
	// EnvLab names the asterisk-lab script (../shared/asterisk/asterisk-lab).
	EnvLab = "SWITCHBOARD_ASTERISK_LAB"
	// EnvBinary names an installed asterisk binary, e.g. /usr/sbin/asterisk.
	EnvBinary = "SWITCHBOARD_ASTERISK"
	// EnvModules and EnvData optionally name the module directory and the
	// data directory (documentation XML, which Asterisk needs to start) of
	// EnvBinary when they are not where the binary was built to find them
	// (a relocated build).
	EnvModules = "SWITCHBOARD_ASTERISK_MODULES"
	EnvData    = "SWITCHBOARD_ASTERISK_DATA"
)

// SkipMessage is why a test that needs a real Asterisk did not run, and how
// to make it run.
const SkipMessage = "no real Asterisk: set " + EnvLab + "=/path/to/asterisk-lab (../shared/asterisk/asterisk-lab) or " +
	EnvBinary + "=/usr/sbin/asterisk to run this test against one (see README, \"Testing against a real Asterisk\")"

// AMI users of the configuration (testdata/etc/manager.conf, the same as the
// lab's): User reads and writes everything; MinUser has the least privilege
// packaging/manager.conf.example documents.
const (
	User    = "switchboard"
	MinUser = "switchboard-min"
	Secret  = "switchboard-secret"
	// BlindUser may run the queue member actions (write agent) but not
	// read their events (no read agent): what an agent then answers.
	BlindUser = "switchboard-blind"
)

// Defaults of Config.
const (
	// DefaultStartTimeout bounds one start: unpacking the lab's tarball the
	// first time, loading modules, and Asterisk reporting FullyBooted.
	DefaultStartTimeout = 60 * time.Second
	// DefaultStopTimeout bounds a graceful stop before the process is killed.
	DefaultStopTimeout = 10 * time.Second
)

//go:embed testdata/etc/*.conf
var etcFiles embed.FS

// Config says which Asterisk to start and where.
type Config struct {
	// Lab is the asterisk-lab script; Binary an installed asterisk. Exactly
	// one must be set.
	Lab    string
	Binary string
	// Modules and Data are Binary's module and data directories; empty
	// means the ones the binary was built with.
	Modules string
	Data    string
	// Dir is the instance directory; empty means a new temporary one that
	// Close removes. Asterisk's control socket lives under it, and its path
	// must stay under ~100 bytes, so keep it short.
	Dir string
	// AMIPort is the AMI port on 127.0.0.1; 0 picks a free one.
	AMIPort      int
	StartTimeout time.Duration
	StopTimeout  time.Duration
}

// FromEnv reads EnvLab, EnvBinary, EnvModules and EnvData. ok is false when neither
// EnvLab nor EnvBinary is set: the caller was not asked to use Asterisk.
func FromEnv() (cfg Config, ok bool) {
	cfg = Config{Lab: os.Getenv(EnvLab), Binary: os.Getenv(EnvBinary), Modules: os.Getenv(EnvModules), Data: os.Getenv(EnvData)}
	return cfg, cfg.Lab != "" || cfg.Binary != ""
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Lab == "" && c.Binary == "":
		return fmt.Errorf("neither %s nor %s is set", EnvLab, EnvBinary)
	case c.Lab != "" && c.Binary != "":
		return fmt.Errorf("both %s and %s are set: choose one", EnvLab, EnvBinary)
	case c.AMIPort < 0 || c.AMIPort > 65535:
		return fmt.Errorf("AMIPort %d is not a TCP port", c.AMIPort)
	case c.StartTimeout < 0 || c.StopTimeout < 0:
		return errors.New("StartTimeout and StopTimeout must not be negative")
	}
	exe := c.Lab
	if exe == "" {
		exe = c.Binary
	}
	st, err := os.Stat(exe)
	if err != nil {
		return fmt.Errorf("asterisk: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", exe)
	}
	return nil
}

// PBX is one running Asterisk.
type PBX struct {
	cfg    Config
	dir    string
	ownDir bool
	port   int

	mu   sync.Mutex
	proc *exec.Cmd     // Binary mode: the running asterisk, nil when stopped
	done chan struct{} // closed when proc has exited
}

// Start starts Asterisk and returns once its AMI listens and it is fully
// booted. ctx bounds the start only, not the PBX's life.
func Start(ctx context.Context, cfg Config) (*PBX, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	p := &PBX{cfg: cfg, dir: cfg.Dir, port: cfg.AMIPort}
	if p.dir == "" {
		// os.TempDir, not a test's TempDir: those paths are too long for
		// Asterisk's control socket.
		d, err := os.MkdirTemp("", "sbast")
		if err != nil {
			return nil, fmt.Errorf("asterisk dir: %w", err)
		}
		p.dir, p.ownDir = d, true
	}
	if p.port == 0 {
		port, err := freePort()
		if err != nil {
			p.removeDir()
			return nil, err
		}
		p.port = port
	}
	if err := p.start(ctx); err != nil {
		_ = p.Stop(context.Background())
		p.removeDir()
		return nil, err
	}
	return p, nil
}

// AMIAddr is the AMI's host:port.
func (p *PBX) AMIAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Dir is the instance directory (logs in Dir()/run/log, recordings in
// Dir()/run/spool/monitor).
func (p *PBX) Dir() string { return p.dir }

// CLI runs one CLI command (`asterisk -rx`) and returns its output.
func (p *PBX) CLI(ctx context.Context, command string) (string, error) {
	var cmd *exec.Cmd
	if p.cfg.Lab != "" {
		cmd = exec.CommandContext(ctx, p.cfg.Lab, "cli", p.dir, command)
	} else {
		cmd = exec.CommandContext(ctx, p.cfg.Binary, "-C", p.confPath(), "-rx", command)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("asterisk cli %q: %w: %s", command, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Restart stops Asterisk and starts it again on the same port and
// directory, as an admin's restart would.
func (p *PBX) Restart(ctx context.Context) error {
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return p.Start(ctx)
}

// Start starts a stopped PBX again.
func (p *PBX) Start(ctx context.Context) error { return p.start(ctx) }

// Stop stops Asterisk (gracefully, then by signal). Stopping a stopped PBX
// does nothing.
func (p *PBX) Stop(ctx context.Context) error {
	if p.cfg.Lab != "" {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.StopTimeout+5*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, p.cfg.Lab, "stop", p.dir).CombinedOutput(); err != nil {
			return fmt.Errorf("asterisk-lab stop: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	p.mu.Lock()
	proc, done := p.proc, p.done
	p.mu.Unlock()
	if proc == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.StopTimeout)
	defer cancel()
	_, _ = p.CLI(cctx, "core stop now")
	select {
	case <-done:
	case <-cctx.Done():
		_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
		<-done
	}
	p.mu.Lock()
	p.proc = nil
	p.mu.Unlock()
	return nil
}

// Close stops Asterisk and removes the directory Start created.
func (p *PBX) Close() error {
	err := p.Stop(context.Background())
	p.removeDir()
	return err
}

// ConsoleLog returns the end of Asterisk's console output, for a failing
// test's log.
func (p *PBX) ConsoleLog(max int) string {
	b, err := os.ReadFile(filepath.Join(p.dir, "run", "console.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func (p *PBX) removeDir() {
	if p.ownDir {
		_ = os.RemoveAll(p.dir)
	}
}

func (p *PBX) confPath() string { return filepath.Join(p.dir, "etc", "asterisk.conf") }

func (p *PBX) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StartTimeout)
	defer cancel()
	if p.cfg.Lab != "" {
		return p.startLab(ctx)
	}
	return p.startBinary(ctx)
}

func (p *PBX) startLab(ctx context.Context) error {
	overlay, err := p.labOverlay()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p.cfg.Lab, "start", p.dir, "--ami-port", strconv.Itoa(p.port), "--etc", overlay)
	// The script checks the binary's libraries with ldd before it starts
	// it; without its own lib directory on the path, that check misses
	// libasteriskssl and (as root) runs apt-get on every start.
	lib := filepath.Join(p.dir, "install", "lib")
	if v := os.Getenv("LD_LIBRARY_PATH"); v != "" {
		lib += ":" + v
	}
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("asterisk-lab start %s: %w: %s", p.dir, err, bytes.TrimSpace(out))
	}
	return nil
}

func (p *PBX) startBinary(ctx context.Context) error {
	if err := p.writeConfig(); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(p.dir, "run", "console.log"))
	if err != nil {
		return fmt.Errorf("asterisk console log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(p.cfg.Binary, "-C", p.confPath(), "-f", "-n")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.cfg.Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.proc, p.done = cmd, done
	p.mu.Unlock()
	for {
		c, err := net.DialTimeout("tcp", p.AMIAddr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("asterisk exited during start (%v); console:\n%s", cmd.ProcessState, p.ConsoleLog(4096))
		case <-ctx.Done():
			return fmt.Errorf("asterisk AMI not listening on %s: %w; console:\n%s", p.AMIAddr(), ctx.Err(), p.ConsoleLog(4096))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if out, err := p.CLI(ctx, "core waitfullybooted"); err != nil {
		return fmt.Errorf("asterisk did not finish booting: %w: %s", err, out)
	}
	return nil
}

// labOverlay writes this package's manager.conf for the lab script's
// --etc: the lab's own etc/ is shared and older than this repository's
// AMI users (MinUser follows packaging/manager.conf.example; BlindUser
// exists only here). The other files are the lab's.
func (p *PBX) labOverlay() (string, error) {
	dir := filepath.Join(p.dir, "etc-overlay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("asterisk-lab overlay: %w", err)
	}
	return dir, p.renderConf("testdata/etc/manager.conf", dir)
}

// writeConfig writes testdata/etc into Dir()/etc with this instance's
// paths and port, plus an asterisk.conf that keeps every directory
// Asterisk writes to inside Dir().
func (p *PBX) writeConfig() error {
	for _, d := range []string{"etc", "run/log", "run/spool", "run/db", "run/cache"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			return fmt.Errorf("asterisk dir: %w", err)
		}
	}
	files, err := fs.Glob(etcFiles, "testdata/etc/*.conf")
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := p.renderConf(f, filepath.Join(p.dir, "etc")); err != nil {
			return err
		}
	}
	return os.WriteFile(p.confPath(), []byte(asteriskConf(p.dir, p.cfg.Modules, p.cfg.Data)), 0o644)
}

// renderConf writes the embedded file (testdata/etc/NAME) into dir with
// this instance's paths and port filled in.
func (p *PBX) renderConf(file, dir string) error {
	b, err := etcFiles.ReadFile(file)
	if err != nil {
		return err
	}
	r := strings.NewReplacer("@AST_HOME@", p.dir, "@AMI_PORT@", strconv.Itoa(p.port))
	if err := os.WriteFile(filepath.Join(dir, path.Base(file)), []byte(r.Replace(string(b))), 0o644); err != nil {
		return fmt.Errorf("asterisk config: %w", err)
	}
	return nil
}

// asteriskConf is an asterisk.conf that reads configuration from home/etc
// and writes only under home/run. Modules and data (documentation XML) stay
// where the installed Asterisk keeps them unless modules and data say
// otherwise. No runuser: Asterisk runs as whoever runs the test.
func asteriskConf(home, modules, data string) string {
	var b strings.Builder
	b.WriteString("[directories]\n")
	for _, kv := range [][2]string{
		{"astetcdir", home + "/etc"},
		{"astrundir", home + "/run"},
		{"astlogdir", home + "/run/log"},
		{"astspooldir", home + "/run/spool"},
		{"astdbdir", home + "/run/db"},
		{"astkeydir", home + "/run"},
		{"astcachedir", home + "/run/cache"},
	} {
		fmt.Fprintf(&b, "%s => %s\n", kv[0], kv[1])
	}
	if modules != "" {
		fmt.Fprintf(&b, "astmoddir => %s\n", modules)
	}
	if data != "" {
		fmt.Fprintf(&b, "astdatadir => %s\nastvarlibdir => %s\n", data, data)
	}
	b.WriteString("\n[options]\nverbose = 3\ndebug = 0\nnocolor = yes\n")
	return b.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free AMI port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
