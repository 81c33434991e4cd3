package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The agent runs as root-adjacent code on every PBX: it must not carry the
// control plane's database drivers, nor test code. go list -deps is the
// exact set of packages linked into the binary.
func TestAgentBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/switchboard-pbx/switchboard/cmd/switchboard-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("suspiciously few dependencies (%d): %v", len(deps), deps)
	}
	forbidden := []string{"github.com/jackc/pgx", "modernc.org/sqlite", "testing", "github.com/switchboard-pbx/switchboard/controlplane", "github.com/switchboard-pbx/switchboard/protocol/ami/amitest"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("switchboard-agent links %s", d)
			}
		}
	}
	for _, must := range []string{"github.com/switchboard-pbx/switchboard/agent", "github.com/hashicorp/yamux"} {
		if !strings.Contains(string(out), must+"\n") {
			t.Errorf("dependency list lacks %s: the check is not looking at the agent", must)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	conf := filepath.Join(dir, "agent.conf")
	os.WriteFile(tok, []byte("sbat_agt_x_y\n"), 0o600)
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(conf, []byte("servr = wss://x\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"missing required", []string{"run"}, 2, "missing --"},
		{"typo in config file", []string{"run", "--config", conf}, 2, `unknown option "servr"`},
		{"empty secret file", []string{"run", "--server", "wss://cp/agent/v1/connect", "--token-file", tok, "--ami-secret-file", empty}, 1, "is empty"},
		{"missing secret file", []string{"run", "--server", "wss://cp/agent/v1/connect", "--token-file", tok, "--ami-secret-file", filepath.Join(dir, "nope")}, 1, "read AMI secret file"},
		{"bad server url", []string{"run", "--server", "ftp://cp", "--token-file", tok, "--ami-secret-file", tok}, 2, "invalid agent config"},
		{"bad log level", []string{"run", "--log-level", "loud"}, 2, "--log-level"},
		{"negative originate limit", []string{"run", "--server", "wss://cp/agent/v1/connect", "--token-file", tok, "--ami-secret-file", tok, "--max-concurrent-originates", "-1"}, 2, "--max-concurrent-originates and --max-concurrent-requests must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d containing %q", code, stdout.String()+stderr.String(), tc.code, tc.want)
			}
			if strings.Contains(stderr.String(), "sbat_agt_x_y") {
				t.Fatal("the token leaked into the output")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "switchboard-agent ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// TestSeveralServers: --server given several times, comma-separated or
// in the config file lists the replicas the agent may dial.
func TestSeveralServers(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("sbat_agt_x_y\n"), 0o600)
	conf := filepath.Join(dir, "agent.conf")
	os.WriteFile(conf, []byte("server = wss://cp1/agent/v1/connect, wss://cp2/agent/v1/connect\n"), 0o600)
	base := []string{"--token-file", tok, "--ami-secret-file", tok}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"one", []string{"--server", "wss://cp1"}, []string{"wss://cp1"}},
		{"repeated", []string{"--server", "wss://cp1", "--server", "wss://cp2", "--server", "wss://cp3"}, []string{"wss://cp1", "wss://cp2", "wss://cp3"}},
		{"comma-separated", []string{"--server", "wss://cp1,wss://cp2"}, []string{"wss://cp1", "wss://cp2"}},
		{"config file", []string{"--config", conf}, []string{"wss://cp1/agent/v1/connect", "wss://cp2/agent/v1/connect"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := load(append(tc.args, base...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := append([]string{cfg.Server}, cfg.MoreServers...); !slices.Equal(got, tc.want) {
				t.Fatalf("servers = %q, want %q", got, tc.want)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"run", "--server", "wss://cp1", "--server", "ftp://cp2"}, base...), io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "ftp") {
		t.Fatalf("a bad second server: exit %d, %s", code, stderr.String())
	}
}
