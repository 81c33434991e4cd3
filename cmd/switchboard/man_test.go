package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestManPages writes every page and has groff render it: no warning
// (-ww), and the rendered page shows each of the command's flags.
func TestManPages(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed here (apt-get install groff-base); the pages are not rendered")
	}
	dir := filepath.Join(t.TempDir(), "man1")
	t.Setenv("SOURCE_DATE_EPOCH", "1795000000")
	code, _, errOut := sh("man", dir)
	cmds := allCommands()
	if code != 0 || !strings.Contains(errOut, "wrote 24 man pages") || len(cmds) != 23 {
		t.Fatalf("man: exit %d, %q (%d commands)", code, errOut, len(cmds))
	}
	render := func(t *testing.T, page string) string {
		t.Helper()
		var out, warn bytes.Buffer
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", filepath.Join(dir, page))
		cmd.Stdout, cmd.Stderr = &out, &warn
		if err := cmd.Run(); err != nil || warn.Len() > 0 {
			t.Fatalf("groff %s: %v\n%s", page, err, warn.String())
		}
		// Bold and underline are overstrikes in groff's tty output.
		return regexp.MustCompile(".\b").ReplaceAllString(out.String(), "")
	}
	main := render(t, "switchboard.1")
	for _, want := range []string{"SWITCHBOARD(1)", "2026-11-18", "switchboard - control a fleet", "EXIT STATUS"} {
		if !strings.Contains(main, want) {
			t.Errorf("switchboard.1 lacks %q:\n%s", want, main)
		}
	}
	for _, c := range cmds {
		t.Run(c.path, func(t *testing.T) {
			page := render(t, manName(c)+".1")
			if !strings.Contains(main, manName(c)+"(1)") {
				t.Errorf("switchboard.1 does not point to %s(1)", manName(c))
			}
			flat := strings.Join(strings.Fields(page), " ") // NAME may wrap
			if !strings.Contains(flat, "NAME "+manName(c)+" - "+c.summary) || !strings.Contains(flat, "SYNOPSIS switchboard "+c.path) {
				t.Errorf("no NAME or SYNOPSIS:\n%s", page)
			}
			for _, f := range definedFlags(c) {
				if !regexp.MustCompile(`(?m)^\s+--` + regexp.QuoteMeta(f) + `\b`).MatchString(page) {
					t.Errorf("--%s not in OPTIONS:\n%s", f, page)
				}
			}
		})
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-P", "cat", "-l", filepath.Join(dir, "switchboard-calls-place.1")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--idempotency-key") {
			t.Fatalf("man -l: %v\n%s", err, out)
		}
	}
}

func TestManDate(t *testing.T) {
	now := time.Date(2026, 12, 6, 23, 0, 0, 0, time.FixedZone("x", -5*3600))
	tests := []struct{ epoch, want string }{
		{"", "2026-12-07"},
		{"1795000000", "2026-11-18"},
	}
	for _, tc := range tests {
		if got, err := manDate(tc.epoch, now); err != nil || got != tc.want {
			t.Errorf("manDate(%q) = %q, %v; want %q", tc.epoch, got, err, tc.want)
		}
	}
	if _, err := manDate("yesterday", now); err == nil {
		t.Error("SOURCE_DATE_EPOCH=yesterday accepted")
	}
}

func TestRoff(t *testing.T) {
	tests := []struct{ in, want string }{
		{`.hidden request`, `\&.hidden request`},
		{`'quote`, `\&'quote`},
		{`back\slash`, `back\eslash`},
		{"postgres://…", `postgres://\[u2026]`},
		{"plain -- text", "plain -- text"},
	}
	for _, tc := range tests {
		if got := roff(tc.in); got != tc.want {
			t.Errorf("roff(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
