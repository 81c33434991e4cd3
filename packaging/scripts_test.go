package packaging

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the rendered scripts")

// scriptRef is a maintainer script named by an nfpm definition:
// `postinstall: ${SCRIPTS}/agent-postinstall.sh`.
var scriptRef = regexp.MustCompile(`(?m)^\s+(?:postinstall|preremove|postremove): \$\{SCRIPTS\}/(\S+)$`)

// render runs scripts/render.sh as scripts/package.sh does and returns
// the directory it wrote.
func render(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("sh", "scripts/render.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render.sh: %v\n%s", err, b)
	}
	return out
}

// packagedScripts is every script the nfpm definitions package, sorted.
func packagedScripts(t *testing.T) []string {
	t.Helper()
	defs, err := filepath.Glob("nfpm-*.yaml")
	if err != nil || len(defs) == 0 {
		t.Fatalf("no nfpm definitions (%v)", err)
	}
	var names []string
	for _, def := range defs {
		data, err := os.ReadFile(def)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range scriptRef.FindAllStringSubmatch(string(data), -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

// TestScriptsGolden renders the maintainer scripts and checks that they are
// exactly the ones the packages name, parse as POSIX sh, have every
// placeholder filled, and equal the reviewed copies in testdata.
func TestScriptsGolden(t *testing.T) {
	dir := render(t)
	want := packagedScripts(t)
	if len(want) != 6 {
		t.Errorf("the nfpm definitions name %d scripts, want 3 phases × 2 packages: %v", len(want), want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("render.sh wrote %v, the packages need %v", got, want)
	}
	for _, name := range got {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
				t.Errorf("sh -n: %v\n%s", err, b)
			}
			if bytes.Contains(data, []byte("@NAMES@")) || bytes.Contains(data, []byte("@PACKAGE@")) {
				t.Errorf("placeholder left in the rendered script")
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantData, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(data, wantData) {
				t.Errorf("rendered %s differs from %s (review, then go test -update)", name, golden)
			}
		})
	}
	goldens, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
	for _, g := range goldens {
		if !slices.Contains(got, strings.TrimSuffix(filepath.Base(g), ".golden")) {
			t.Errorf("%s has no rendered script: delete it", g)
		}
	}
}

// stubPath makes a directory of stand-ins for every command the scripts
// run; each appends its command line to the returned log. The scripts run
// with PATH set to it alone, so they change nothing on this machine.
func stubPath(t *testing.T) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(dir, "calls.log")
	for _, c := range []string{"getent", "addgroup", "groupadd", "adduser", "useradd", "chown", "chmod",
		"systemctl", "rm", "rmdir", "deluser", "userdel", "delgroup", "groupdel"} {
		stub := "#!/bin/sh\necho \"${0##*/} $*\" >>" + log + "\n"
		if err := os.WriteFile(filepath.Join(dir, c), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, log
}

// TestScriptsActions runs the rendered scripts against stub commands: the
// actions a phase must ignore run nothing, and the ones it handles run the
// commands that do its job. Only what does not depend on this machine's
// files (/run/systemd/system, existing config files) is asserted.
func TestScriptsActions(t *testing.T) {
	dir := render(t)
	tests := []struct {
		script string
		args   []string
		calls  []string // each must have been run; nil: nothing may run
		stdout string   // must be in the output; "": no output
	}{
		{"agent-postinstall.sh", []string{"abort-upgrade", "1.0.0"}, nil, ""},
		{"agent-postinstall.sh", []string{"abort-remove"}, nil, ""},
		{"agent-preremove.sh", []string{"upgrade", "1.0.1"}, nil, ""},
		{"agent-preremove.sh", []string{"1"}, nil, ""},
		{"agent-postremove.sh", []string{"upgrade", "1.0.1"}, nil, ""},
		{"agent-postremove.sh", []string{"failed-upgrade", "1.0.1"}, nil, ""},
		{"agent-postremove.sh", []string{"1"}, nil, ""},
		{"switchboard-preremove.sh", []string{"deconfigure"}, nil, ""},
		{"switchboard-postremove.sh", []string{"disappear"}, nil, ""},
		{"agent-postinstall.sh", []string{"configure", ""},
			[]string{"getent group switchboard-agent", "getent passwd switchboard-agent"},
			"'systemctl enable --now switchboard-agent'"},
		{"switchboard-postinstall.sh", []string{"1"},
			[]string{"getent group switchboard", "getent passwd switchboard"},
			"'systemctl enable --now switchboard'"},
		{"agent-postremove.sh", []string{"purge"}, []string{
			"rm -f /etc/switchboard/agent.token", "rm -f /etc/switchboard/ami.secret", "rmdir /etc/switchboard",
			"deluser --system --quiet switchboard-agent",
			"delgroup --system --only-if-empty --quiet switchboard-agent"}, ""},
		{"switchboard-postremove.sh", []string{"purge"}, []string{
			"rm -f /etc/switchboard/tls.key", "rm -f /etc/switchboard/jwt.secret",
			"rm -f /etc/credstore/switchboard-jwt-secret", "rmdir /etc/switchboard",
			"deluser --system --quiet switchboard", "delgroup --system --only-if-empty --quiet switchboard"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.script+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			stubs, log := stubPath(t)
			cmd := exec.Command("/bin/sh", append([]string{filepath.Join(dir, tc.script)}, tc.args...)...)
			cmd.Env = []string{"PATH=" + stubs}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("exit: %v\n%s", err, out)
			}
			logged, _ := os.ReadFile(log)
			calls := strings.Split(strings.TrimSpace(string(logged)), "\n")
			if tc.calls == nil && len(logged) > 0 {
				t.Errorf("ran commands, want none:\n%s", logged)
			}
			for _, c := range tc.calls {
				if !slices.Contains(calls, c) {
					t.Errorf("did not run %q; ran:\n%s", c, logged)
				}
			}
			if tc.stdout == "" && len(out) > 0 || !strings.Contains(string(out), tc.stdout) {
				t.Errorf("output %q, want %q", out, tc.stdout)
			}
		})
	}
}
