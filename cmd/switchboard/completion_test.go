package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// script writes `switchboard completion SHELL` to a file.
func script(t *testing.T, shell string) string {
	t.Helper()
	var out, errw bytes.Buffer
	if code := run(context.Background(), []string{"completion", shell}, &out, &errw); code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errw.String())
	}
	p := filepath.Join(t.TempDir(), "switchboard."+shell)
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompletionScriptsParse checks each script with its shell's own
// parser. bash is required; zsh and fish are checked where installed
// (apt-get install zsh fish).
func TestCompletionScriptsParse(t *testing.T) {
	tests := []struct {
		shell    string
		check    []string
		required bool
	}{
		{"bash", []string{"bash", "-n"}, true},
		{"zsh", []string{"zsh", "-n"}, false},
		{"fish", []string{"fish", "--no-execute"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.shell, func(t *testing.T) {
			if _, err := exec.LookPath(tc.check[0]); err != nil {
				if tc.required {
					t.Fatalf("%s not found: %v", tc.check[0], err)
				}
				t.Skipf("%s is not installed here; its script is not syntax-checked", tc.check[0])
			}
			p := script(t, tc.shell)
			out, err := exec.Command(tc.check[0], append(tc.check[1:], p)...).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Fatalf("%s %s: %v\n%s", strings.Join(tc.check, " "), p, err, out)
			}
		})
	}
	if code := run(context.Background(), []string{"completion", "tcsh"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("completion tcsh: exit %d, want 2", code)
	}
}

// bashComplete runs the bash completion function on each command line
// (words separated by spaces; a trailing space starts an empty word) and
// returns what it offers for each.
func bashComplete(t *testing.T, lines []string) [][]string {
	t.Helper()
	p := script(t, "bash")
	var drv strings.Builder
	drv.WriteString("source " + shellQuote(p) + "\n")
	for _, l := range lines {
		words := strings.Split(l, " ")
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		drv.WriteString("COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _switchboard\n")
		drv.WriteString("printf '%s ' \"${COMPREPLY[@]}\"; echo\n")
	}
	cmd := exec.Command("bash", "-c", drv.String())
	cmd.Dir = t.TempDir()
	for _, f := range []string{"a.conf", "b.pem"} {
		os.WriteFile(filepath.Join(cmd.Dir, f), nil, 0o600)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("bash printed %d lines for %d command lines:\n%s", len(got), len(lines), out)
	}
	res := make([][]string, len(got))
	for i, g := range got {
		res[i] = strings.Fields(g)
	}
	return res
}

func TestBashCompletion(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"switchboard ca", []string{"calls"}},
		{"switchboard calls ", []string{"list", "place", "hangup"}},
		{"switchboard calls list --st", []string{"--status"}},
		{"switchboard calls list --status ", callStatuses},
		{"switchboard calls list --status = ", callStatuses}, // --status=<TAB>: bash splits at "="
		{"switchboard fleet status --ami d", []string{"down"}},
		{"switchboard monitor --mode ", monitorModes},
		{"switchboard events tail --format t", []string{"table"}},
		{"switchboard completion ", []string{"bash", "zsh", "fish"}},
		{"switchboard serve --config ", []string{"a.conf", "b.pem"}},
		{"switchboard calls place --from ", nil}, // a value nobody can guess
		{"switchboard help calls", []string{"calls"}},
		{"switchboard enterprise create --c", []string{"--config"}},
	}
	var lines []string
	for _, tc := range tests {
		lines = append(lines, tc.line)
	}
	got := bashComplete(t, lines)
	for i, tc := range tests {
		want := slices.Clone(tc.want)
		slices.Sort(got[i]) // compgen -f lists files in directory order
		slices.Sort(want)
		if !slices.Equal(got[i], want) {
			t.Errorf("%q offers %q, want %q", tc.line, got[i], tc.want)
		}
	}
}

// Every flag of every command is offered after "--", and nothing else.
func TestBashCompletionOffersEveryFlag(t *testing.T) {
	cmds := allCommands()
	var lines []string
	for _, c := range cmds {
		lines = append(lines, "switchboard "+c.path+" --")
	}
	got := bashComplete(t, lines)
	for i, c := range cmds {
		var want []string
		for _, f := range definedFlags(c) {
			want = append(want, "--"+f)
		}
		want = append(want, "--help")
		if !slices.Equal(got[i], want) {
			t.Errorf("%s: offers %q, want %q", c.path, got[i], want)
		}
	}
}

func TestFishCompletion(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish is not installed here (apt-get install fish)")
	}
	p := script(t, "fish")
	tests := []struct {
		line string
		want []string
	}{
		{"switchboard calls ", []string{"hangup", "list", "place"}},
		{"switchboard calls list --st", []string{"--status"}},
		{"switchboard fleet status --ami ", []string{"down", "unknown", "up"}},
		{"switchboard completion ", []string{"bash", "fish", "zsh"}},
		{"switchboard agent create --con", []string{"--config", "--context"}},
	}
	for _, tc := range tests {
		out, err := exec.Command("fish", "--no-config", "-c", "source "+p+"; complete -C "+fishQuote(tc.line)).CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			w, _, _ := strings.Cut(l, "\t")
			got = append(got, w)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q offers %q, want %q", tc.line, got, tc.want)
		}
	}
}
