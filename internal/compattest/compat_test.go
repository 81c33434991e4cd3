package compattest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// baseline is main before protocol version 2 (commit f70f223): its agent
// and control plane speak protocol 1 only, with the equality check that
// version ranges replace.
const baseline = "f70f2232edc1dbddb933ab2bde91358b07f7fea9"

// binDir holds this run's binaries; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binaries are switchboard and switchboard-agent of one source tree.
type binaries struct{ controlPlane, agent string }

// repoRoot is the git checkout this tree is, or a skip reason when it is
// not one (a source tarball has no history to build the baseline from).
func repoRoot() (string, string) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err.Error()
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Sprintf("%s is not a git checkout (a source tarball?), so the baseline %s cannot be built: %v", root, baseline[:7], err)
	}
	top, _ := filepath.EvalSymlinks(strings.TrimSpace(string(out)))
	if real, _ := filepath.EvalSymlinks(root); top != real {
		return "", fmt.Sprintf("%s is not a git checkout of its own (it lies inside %s), so the baseline %s cannot be built", root, top, baseline[:7])
	}
	return root, ""
}

func goBuild(srcDir, outDir string) (binaries, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", outDir+string(os.PathSeparator),
		"./cmd/switchboard", "./cmd/switchboard-agent")
	cmd.Dir = srcDir
	// -trimpath lets the baseline share the build cache with this tree
	// wherever their sources agree; GOWORK=off keeps a workspace out.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build in %s: %v\n%s", srcDir, err, out)
	}
	return binaries{filepath.Join(outDir, "switchboard"), filepath.Join(outDir, "switchboard-agent")}, nil
}

var buildCurrent = sync.OnceValues(func() (binaries, error) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	return goBuild(root, filepath.Join(binDir, "current"))
})

var buildBaseline = sync.OnceValues(func() (binaries, error) {
	root, skip := repoRoot()
	if skip != "" {
		return binaries{}, errSkip{skip}
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", baseline+"^{commit}").Run(); err != nil {
		return binaries{}, fmt.Errorf("the baseline commit %s is not in this git checkout (a shallow clone?): "+
			"run `git fetch --unshallow` (or `git fetch origin %s`) and test again", baseline, baseline)
	}
	src := filepath.Join(binDir, "baseline-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return binaries{}, err
	}
	defer os.RemoveAll(src) // only the binaries are needed
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", baseline)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return binaries{}, err
	}
	untar.Stdin = pipe
	var archiveErr, untarErr bytes.Buffer
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		return binaries{}, fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return binaries{}, fmt.Errorf("git archive %s: %v\n%s", baseline, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		return binaries{}, fmt.Errorf("untar %s: %v\n%s", baseline, err, untarErr.String())
	}
	return goBuild(src, filepath.Join(binDir, "baseline"))
})

type errSkip struct{ why string }

func (e errSkip) Error() string { return e.why }

func builds(t *testing.T) (current, old binaries) {
	t.Helper()
	old, err := buildBaseline()
	var skip errSkip
	if errors.As(err, &skip) {
		t.Skip(skip.why)
	}
	if err != nil {
		t.Fatal(err)
	}
	current, err = buildCurrent()
	if err != nil {
		t.Fatal(err)
	}
	return current, old
}

// proc is a child process; its output goes to the test log on failure.
type proc struct {
	cmd *exec.Cmd
	out *testio.Buffer
}

func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &testio.Buffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.out.String())
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends a request to the API and decodes a JSON answer into v.
func do(method, url, key, body string, v any) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %s", err, raw)
	}
	return resp.StatusCode, nil
}

// fleet is a control plane with one enterprise, one PBX and an API key,
// set up with the control plane binary's own admin commands, and an
// agent of another build connected to it over a real tunnel, in front of
// the AMI fake.
type fleet struct {
	base  string // http://addr of the control plane
	key   string // API key of the enterprise
	token string // the agent's token
	agent *proc
	pbx   *amitest.Server
}

func startFleet(t *testing.T, cp, agent binaries) *fleet {
	t.Helper()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "switchboard.db")
	admin := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(cp.controlPlane, append(args, "--db", db, "--json")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr // which store is used, said on stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("switchboard %v: %v\n%s%s", args, err, out, stderr.Bytes())
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("switchboard %v printed %q: %v", args, out, err)
		}
		return m
	}
	admin("enterprise", "create", "--number", "0367", "--name", "june")
	ag := admin("agent", "create", "--enterprise", "0367", "--name", "pbx-june")
	f := &fleet{key: admin("apikey", "create", "--enterprise", "0367")["key"].(string), token: ag["token"].(string)}
	tokenFile, secretFile := filepath.Join(dir, "agent.token"), filepath.Join(dir, "ami.secret")
	if err := os.WriteFile(tokenFile, []byte(ag["token"].(string)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(amitest.DefaultSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.pbx = amitest.NewServer(t)

	addr := freeAddr(t)
	f.base = "http://" + addr
	start(t, "switchboard serve", cp.controlPlane, "serve", "--listen", addr, "--db", db, "--heartbeat-seconds", "1")
	f.agent = start(t, "switchboard-agent", agent.agent, "run", "--server", "ws://"+addr+protocol.ConnectPath,
		"--token-file", tokenFile, "--ami", f.pbx.Addr(), "--ami-user", "switchboard", "--ami-secret-file", secretFile)
	eventually(t, "the agent connected", func() bool {
		var ready struct {
			Agents int `json:"agents_connected"`
		}
		code, err := do("GET", f.base+"/readyz", "", "", &ready)
		return err == nil && code == http.StatusOK && ready.Agents == 1
	})
	return f
}

// originate places a call through the API and checks that it reached
// Asterisk as the Originate the API's answer announced.
func (f *fleet) originate(t *testing.T) {
	t.Helper()
	var call struct {
		CallID string `json:"call_id"`
	}
	code, err := do("POST", f.base+"/v1/calls", f.key, `{"from":"150","to":"+375296254070"}`, &call)
	if err != nil || code != http.StatusCreated || call.CallID == "" {
		t.Fatalf("POST /v1/calls: %d %+v %v", code, call, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	orig, err := f.pbx.WaitAction(ctx, "Originate")
	if err != nil {
		t.Fatal(err)
	}
	if orig.Get("ChannelId") != call.CallID || orig.Get("Channel") != "Local/150@inoffice" || orig.Get("Data") != "Local/+375296254070@inoffice" {
		t.Fatalf("Asterisk received\n%s\nfor call %s", orig, call.CallID)
	}
}

// The control plane is upgraded first: agents of the previous release
// keep working, on protocol 1, which GET /v1/pbxs shows.
func TestBaselineAgentCurrentControlPlane(t *testing.T) {
	current, old := builds(t)
	f := startFleet(t, current, old)
	var list struct {
		PBXs []struct {
			ID            string `json:"id"`
			Connected     bool   `json:"connected"`
			AgentProtocol int    `json:"agent_protocol"`
		} `json:"pbxs"`
	}
	code, err := do("GET", f.base+"/v1/pbxs", f.key, "", &list)
	if err != nil || code != http.StatusOK || len(list.PBXs) != 1 || !list.PBXs[0].Connected || list.PBXs[0].AgentProtocol != 1 {
		t.Fatalf("GET /v1/pbxs: %d %+v %v, want one connected PBX on protocol 1", code, list, err)
	}
	f.originate(t)

	// An agent of the next protocol is told this one's, which is how it
	// falls back (the API answers for the gateway here).
	req, _ := http.NewRequest("GET", f.base+protocol.ConnectPath, nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set(protocol.VersionHeader, fmt.Sprint(protocol.Version+1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(protocol.VersionHeader) != fmt.Sprint(protocol.Version) {
		t.Fatalf("a protocol %d agent got %d with %s %q (%s), want 400 with %d", protocol.Version+1,
			resp.StatusCode, protocol.VersionHeader, resp.Header.Get(protocol.VersionHeader), body, protocol.Version)
	}
}

// An agent upgraded before its control plane (or a control plane rolled
// back) connects as protocol 1 and works with the previous release's API.
func TestCurrentAgentBaselineControlPlane(t *testing.T) {
	current, old := builds(t)
	f := startFleet(t, old, current)
	if !strings.Contains(f.agent.out.String(), "control plane speaks an older protocol") {
		t.Fatalf("the agent did not say it fell back to protocol 1:\n%s", f.agent.out.String())
	}
	f.originate(t)
}
