package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// helpFlagLine matches a flag line of --help: the flag's name.
var helpFlagLine = regexp.MustCompile(`(?m)^ +--([a-z][a-z-]*)`)

// definedFlags are the flags a command defines, in order.
func definedFlags(c *command) []string {
	fs, _ := newFlagSet(c)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

// Every command and subcommand answers --help (and -h, and `help PATH`)
// on stdout with exit 0, nothing on stderr, and exactly its own flags.
func TestEveryCommandHelp(t *testing.T) {
	t.Chdir(t.TempDir()) // a help that opened a store would leave a file here
	cmds := allCommands()
	if len(cmds) < 20 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, c := range cmds {
		for _, form := range [][]string{
			append(strings.Fields(c.path), "--help"),
			append(strings.Fields(c.path), "-h"),
			append([]string{"help"}, strings.Fields(c.path)...),
		} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), form, &stdout, &stderr)
				out := stdout.String()
				if code != 0 || stderr.Len() != 0 {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr.String())
				}
				if !strings.HasPrefix(out, "Usage: switchboard "+c.path) {
					t.Fatalf("help does not start with its usage line:\n%s", out)
				}
				if strings.Contains(out, "pflag") {
					t.Fatalf("help mentions pflag:\n%s", out)
				}
				var listed []string
				for _, m := range helpFlagLine.FindAllStringSubmatch(out, -1) {
					listed = append(listed, m[1])
				}
				if want := definedFlags(c); !slices.Equal(listed, want) {
					t.Fatalf("help lists flags %v, want exactly the command's own %v:\n%s", listed, want, out)
				}
				if slices.Contains(listed, "config") && !strings.Contains(out, "--config FILE ") {
					t.Fatalf("--config is not shown as `--config FILE`:\n%s", out)
				}
				if strings.Contains(out, "[=true|false]") {
					t.Fatalf("help shows pflag's [=true|false]:\n%s", out)
				}
			})
		}
	}
	entries, _ := os.ReadDir(".")
	if len(entries) != 0 {
		t.Fatalf("--help left files behind: %v", entries)
	}
}

// The flags of one command are not another's: the report that started
// this (enterprise create --help listed agent and apikey flags).
func TestHelpListsOnlyOwnFlags(t *testing.T) {
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"enterprise", "create", "--help"}, &stdout, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, other := range []string{"--context", "--enterprise", "--scopes"} {
		if strings.Contains(stdout.String(), other) {
			t.Errorf("enterprise create --help lists %s:\n%s", other, stdout.String())
		}
	}
}

// The words that group commands, and the program itself.
func TestParentAndProgramHelp(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"program --help", []string{"--help"}, 0, []string{"Usage: switchboard COMMAND", "calls place", "webhook listen", "completion"}, ""},
		{"program -h", []string{"-h"}, 0, []string{"Usage: switchboard COMMAND"}, ""},
		{"help", []string{"help"}, 0, []string{"Tenants and credentials"}, ""},
		{"enterprise --help", []string{"enterprise", "--help"}, 0, []string{"enterprise create", "enterprise list"}, ""},
		{"calls -h", []string{"calls", "-h"}, 0, []string{"calls list", "calls place", "calls hangup"}, ""},
		{"help calls", []string{"help", "calls"}, 0, []string{"calls hangup"}, ""},
		{"no arguments", nil, 2, nil, "Usage: switchboard COMMAND"},
		{"parent alone", []string{"agent"}, 2, nil, "agent create"},
		{"unknown verb", []string{"agent", "fly"}, 2, nil, `unknown command "agent fly"`},
		{"unknown command", []string{"fly"}, 2, nil, `unknown command "fly"`},
		{"unknown flag", []string{"calls", "list", "--color"}, 2, nil, "unknown flag: --color"},
		{"help of nothing", []string{"help", "fly"}, 2, nil, "unknown command"},
		{"version", []string{"version"}, 0, []string{"switchboard dev"}, ""},
		{"--version", []string{"--version"}, 0, []string{"switchboard dev"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.stderr)
			}
			if strings.Contains(stdout.String()+stderr.String(), "pflag") {
				t.Errorf("output mentions pflag")
			}
		})
	}
}

// demo's flags live in demo.go (not this file's owner's); the command
// table describes them for --help, completion and man pages. They must
// be the same flags with the same defaults and texts.
func TestDemoFlagsDescribed(t *testing.T) {
	var pflagHelp bytes.Buffer
	_ = demo(context.Background(), []string{"--help"}, io.Discard, &pflagHelp)
	real := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ +--([a-z-]+)\S*( \w+)? +(.*)$`).FindAllStringSubmatch(pflagHelp.String(), -1) {
		real[m[1]] = m[3]
	}
	if len(real) == 0 {
		t.Fatalf("demo --help printed no flags: %q", pflagHelp.String())
	}
	c, _, _ := findCommand(allCommands(), []string{"demo"})
	fs, _ := newFlagSet(c)
	described := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		_, usage := pflag.UnquoteUsage(f)
		line := usage
		if f.DefValue != "false" && f.DefValue != "" {
			line += ` (default "` + f.DefValue + `")`
			if f.Value.Type() != "string" {
				line = usage + " (default " + f.DefValue + ")"
			}
		}
		described[f.Name] = line
	})
	for name, text := range real {
		if described[name] != text {
			t.Errorf("demo --%s: demo.go says %q, the command table %q", name, text, described[name])
		}
	}
	for name := range described {
		if _, ok := real[name]; !ok {
			t.Errorf("the command table describes demo --%s, which demo.go does not define", name)
		}
	}
}
