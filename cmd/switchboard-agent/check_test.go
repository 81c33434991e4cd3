package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// TestCheck runs `check` against a fake Asterisk and a real control plane
// over loopback.
func TestCheck(t *testing.T) {
	cp := systemtest.New(t, systemtest.Options{})
	cp.Enterprise(t, "0367", "june")
	ctx := context.Background()
	good, goodToken, err := cp.Store().CreateAgent(ctx, "0367", "pbx-good", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	_ = good
	revoked, revokedToken, err := cp.Store().CreateAgent(ctx, "0367", "pbx-revoked", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Store().RevokeAgent(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	pbx := amitest.NewServer(t, amitest.WithAuthFailDelay(-1))

	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodTok, revokedTok := file("good.token", goodToken), file("revoked.token", revokedToken)
	secret, wrongSecret := file("ami.secret", amitest.DefaultSecret), file("wrong.secret", "not-the-secret")
	server := "ws" + strings.TrimPrefix(cp.URL, "http") // no path: check adds /agent/v1/connect
	// A port nobody listens on: listen, note it, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	args := func(server, token, amiSecret string) []string {
		return []string{"check", "--server", server, "--token-file", token, "--ami", pbx.Addr(), "--ami-secret-file", amiSecret}
	}
	tests := []struct {
		name  string
		args  []string
		code  int
		lines []string // each must appear as a line prefix (status + name), in order
		want  []string // substrings of the output
	}{
		{
			name: "all ok",
			args: args(server, goodTok, secret),
			code: 0,
			lines: []string{"ok    config", "ok    ami login", "ok    ami permissions", "ok    ami operations", "warn  ami privilege",
				"warn  ami privilege", "warn  ami privilege", "ok    control plane", "5 ok, 3 warn, 0 FAIL"},
			// The fake lists Command, MixMonitor, MuteAudio and UserEvent:
			// its user has every write class, so warnings are the right
			// answer.
			want: []string{"Asterisk 22.10.1", `write includes "command" (it lists Command)`, "write also grants user",
				`write includes "system" (it lists MixMonitor, MuteAudio)`, "only recording_start and mute need it",
				"may run originate, hangup, monitor, channels, status, transfer, transfer_complete, transfer_cancel, dtmf, park, parked, parked_pickup, mute, queues, queue_member_add, queue_member_remove, queue_member_pause, queue_member_penalty, recording_start, recording_stop, recording_mute; they also need read = system,call,cdr,agent,dtmf",
				"token accepted, protocol " + strconv.Itoa(protocol.Version) + " accepted"},
		},
		{
			name:  "bad AMI secret",
			args:  args(server, goodTok, wrongSecret),
			code:  1,
			lines: []string{"ok    config", "FAIL  ami login", "ok    control plane", "2 ok, 0 warn, 1 FAIL"},
			want:  []string{"Asterisk refused the login"},
		},
		{
			name:  "unreachable control plane",
			args:  args("ws://"+deadAddr, goodTok, secret),
			code:  1,
			lines: []string{"ok    ami permissions", "FAIL  control plane"},
			want:  []string{"unreachable", "connection refused"},
		},
		{
			name:  "revoked token",
			args:  args(server, revokedTok, secret),
			code:  1,
			lines: []string{"ok    ami login", "FAIL  control plane"},
			want:  []string{"refused the agent token", "401"},
		},
		{
			name:  "config incomplete",
			args:  []string{"check", "--server", server},
			code:  1,
			lines: []string{"FAIL  config", "0 ok, 0 warn, 1 FAIL"},
			want:  []string{"missing --"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, tc.args, &stdout, &stderr)
			out := stdout.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, stderr.String())
			}
			lines := strings.Split(out, "\n")
			at := 0
			for _, want := range tc.lines {
				i := slices.IndexFunc(lines[at:], func(l string) bool { return strings.HasPrefix(l, want) })
				if i < 0 {
					t.Fatalf("no line %q (in order) in\n%s", want, out)
				}
				at += i + 1
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, secret := range []string{goodToken, revokedToken, amitest.DefaultSecret} {
				if strings.Contains(out+stderr.String(), secret) {
					t.Fatal("a secret leaked into the output")
				}
			}
			if code != 0 && !strings.Contains(stderr.String(), "check failed") {
				t.Errorf("stderr lacks the failure summary: %q", stderr.String())
			}
		})
	}

	// The check never sent Hello: the PBX was never registered.
	if _, ok := cp.CP().Registry().Get(good.ID); ok {
		t.Fatal("check registered the agent: a running agent would have been replaced")
	}
}

// captureListCommands is the ListCommands answer of a real Asterisk 22 to
// a write=all user.
func captureListCommands(t *testing.T) *ami.Message {
	t.Helper()
	f, err := os.Open("../../protocol/ami/testdata/transcripts/11-misc-command-settings.recv.raw")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ami.NewReader(f)
	if _, err := r.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("no ListCommands answer in the capture: %v", err)
		}
		if m.ActionID() == "lc-13" {
			return m
		}
	}
}

// asUser filters a write=all listing the way Asterisk does for a user with
// the given write classes: an action is listed when it needs no class or
// one of the user's.
func asUser(t *testing.T, all *ami.Message, classes ...string) *ami.Message {
	t.Helper()
	out := &ami.Message{}
	for _, h := range all.Headers {
		p, ok := parsePriv(h.Value)
		if !ok || len(p) == 0 || slices.ContainsFunc(p, func(c string) bool { return slices.Contains(classes, c) }) {
			out.Headers = append(out.Headers, h)
		}
	}
	return out
}

func TestAnalyzePermissions(t *testing.T) {
	all := captureListCommands(t)
	if len(all.Headers) < 100 {
		t.Fatalf("capture has %d headers; not the full listing", len(all.Headers))
	}
	tests := []struct {
		name      string
		classes   []string // nil: the capture as is (write=all)
		missing   []string
		dangerous []string
		extra     []string
	}{
		{name: "write=all", missing: nil, dangerous: []string{"agi", "command", "config", "system"},
			extra: []string{"aoc", "message", "user"}},
		{name: "least privilege", classes: []string{"originate", "call", "reporting"}},
		{name: "reporting alone", classes: []string{"reporting"}, missing: []string{"Originate", "Hangup"}},
		{name: "originate alone", classes: []string{"originate"}, missing: []string{"Hangup", "Status", "CoreShowChannels", "CoreSettings"}},
		{name: "system instead of call and reporting", classes: []string{"originate", "system"}, dangerous: []string{"system"}},
		{name: "nothing", classes: []string{}, missing: neededActions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := all
			if tc.classes != nil {
				m = asUser(t, all, tc.classes...)
			}
			p := analyzePermissions(m)
			if !slices.Equal(p.missing, tc.missing) {
				t.Errorf("missing %v, want %v", p.missing, tc.missing)
			}
			var dangerous []string
			for _, d := range dangerousClasses {
				if _, ok := p.granted[d.class]; ok {
					dangerous = append(dangerous, d.class)
				}
			}
			slices.Sort(dangerous)
			if !slices.Equal(dangerous, tc.dangerous) {
				t.Errorf("dangerous %v, want %v", dangerous, tc.dangerous)
			}
			if !slices.Equal(p.extra, tc.extra) {
				t.Errorf("extra %v, want %v", p.extra, tc.extra)
			}
		})
	}
}

func TestParsePriv(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"Hangup channel.  (Priv: system,call,all)", []string{"system", "call"}, true},
		{"List available manager commands.  (Priv: <none>)", []string{}, true},
		{"Execute Asterisk CLI Command.  (Priv: command,all)", []string{"command"}, true},
		{"A synopsis (with parentheses).  (Priv: Call,ALL)", []string{"call"}, true},
		{"no privilege part", nil, false},
		{"truncated (Priv: call", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parsePriv(tc.in)
			if ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("parsePriv = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParsePriv(f *testing.F) {
	for _, s := range []string{"x  (Priv: system,call,all)", "(Priv: <none>)", "(Priv: ", "(Priv: ,,,)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		classes, ok := parsePriv(s)
		if !ok && classes != nil {
			t.Fatalf("classes %v without ok", classes)
		}
		for _, c := range classes {
			if c == "" || c == "all" || strings.ContainsAny(c, ",)") {
				t.Fatalf("bad class %q from %q", c, s)
			}
		}
	})
}

func TestVulnerableAsterisk(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"22.10.1", false},
		{"21.4.2", false},
		{"21.4.1", true},
		{"20.9.2", false},
		{"20.8.9", true},
		{"18.24.1", true},
		{"18.25.0", false},
		{"16.30.0", true},
		{"19.8.0", true},
		{"23.0.0-rc1", false},
		{"certified-20.7-cert1", false},
		{"GIT-master-abc", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			if _, got := vulnerableAsterisk(tc.version); got != tc.want {
				t.Fatalf("vulnerableAsterisk(%q) = %v, want %v", tc.version, got, tc.want)
			}
		})
	}
}
