package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeCommand is a command line of the README that the README test runs:
// a curl, or a variable set from a curl or a switchboard command.
var readmeCommand = regexp.MustCompile(`^(curl |[A-Z]+=\$\((curl|switchboard) )`)

// readmeCommands returns the runnable command lines of README.md's sh
// blocks, continuation lines joined, in order.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in, cont := false, ""
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if cont != "" {
			line = cont + " " + strings.TrimSpace(line)
			cont = ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		if readmeCommand.MatchString(strings.TrimSpace(line)) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// TestREADMECommandsRun runs every curl line of the README, as printed,
// against the demo: with the demo's exports, its JWT secret as jwt.secret
// and a webhook secret in whsec.txt (the files the README names), and curl
// made to fail on any HTTP error, so an example that answers 4xx or 5xx
// fails the test.
func TestREADMECommandsRun(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's commands: apt-get install curl")
	}
	cmds := readmeCommands(t)
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found in README.md", len(cmds))
	}
	bin, err := bins.Dir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	exports, secret, done := startDemo(t, ctx)
	dir := t.TempDir()
	if err := os.Symlink(secret, filepath.Join(dir, "jwt.secret")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "whsec.txt"), []byte("readme-webhook-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "set -e\ncd " + dir + "\nexport PATH=" + bin + ":$PATH\n" + strings.Join(exports, "\n") + "\n" +
		"curl() { command curl --fail-with-body \"$@\"; }\n" +
		// Extension 150 on a call, as the demo's traffic would have it,
		// answered (the demo's phones ring 2 s): before the README runs,
		// and again before the examples that record it (the API examples
		// hang up every call).
		"on150() {\n" +
		`  id=$(command curl -s --fail-with-body -X POST $SB/v1/calls -H "Authorization: Bearer $KEY" -d '{"from":"150","to":"+375296254079"}' | sed -n 's/.*"call_id":"\([^"]*\)".*/\1/p')` + "\n" +
		`  for i in $(seq 100); do command curl -s "$SB/v1/calls/$id" -H "Authorization: Bearer $KEY" | grep -q '"status":"in-progress"' && return; sleep 0.1; done` + "\n" +
		"}\non150\n"
	for i, c := range cmds {
		if strings.Contains(c, "extension=150&status=in-progress") {
			script += "on150\n"
		}
		script += "echo '### " + strconv.Itoa(i) + "'\n" + c + "\necho\n"
	}
	script += "echo '### done'\n"
	out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("README commands failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "### done") {
		t.Fatalf("not every README command ran:\n%s", out)
	}
	t.Logf("%d README commands ran:\n%s", len(cmds), out)
	cancel()
	<-done
}

// startDemo runs `switchboard demo` until ctx ends and returns its export
// lines and the path of its JWT secret; done is closed once it stopped.
func startDemo(t *testing.T, ctx context.Context) (exports []string, secret string, done <-chan struct{}) {
	t.Helper()
	pr, pw := io.Pipe()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--traffic=false", "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(exports) < 2 {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "JWT secret"); ok {
			secret = strings.TrimSpace(v)
		}
		if strings.HasPrefix(line, "export ") {
			exports = append(exports, line)
		}
	}
	go io.Copy(io.Discard, pr)
	if len(exports) != 2 || secret == "" {
		t.Fatalf("demo printed exports %q, JWT secret %q", exports, secret)
	}
	return exports, secret, stopped
}
