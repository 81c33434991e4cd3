package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCopyrightNamesEveryLinkedModule: the packages' copyright file
// (Debian's machine-readable format) has a Files paragraph for every Go
// module linked into the two binaries, and a License paragraph for every
// license it names, so adding a dependency without its notice fails here.
func TestCopyrightNamesEveryLinkedModule(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "packaging", "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if !strings.HasPrefix(text, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Fatal("packaging/copyright does not start with the DEP-5 Format line")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}",
		"github.com/switchboard-pbx/switchboard/cmd/switchboard", "github.com/switchboard-pbx/switchboard/cmd/switchboard-agent").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := regexp.MustCompile(`(?m)^(?:Files:)?\s+(\S+)/\*$|^Files: (\S+)/\*$`)
	named := map[string]bool{}
	for _, m := range files.FindAllStringSubmatch(text, -1) {
		named[m[1]+m[2]] = true
	}
	for _, mod := range strings.Fields(string(out)) {
		switch {
		case mod == "github.com/switchboard-pbx/switchboard":
		case mod == "github.com/hashicorp/yamux":
			if !named["third_party/yamux"] {
				t.Error("no Files paragraph for third_party/yamux")
			}
		case !named[mod]:
			t.Errorf("packaging/copyright has no Files paragraph for %s, linked into the binaries", mod)
		}
	}

	// Paragraphs: each Files one has Copyright and License; each license
	// named has its own License paragraph with the text.
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^License: (\S+)\n `).FindAllStringSubmatch(text, -1) {
		defined[m[1]] = true
	}
	for _, para := range strings.Split(text, "\n\n") {
		if !strings.HasPrefix(para, "Files: ") {
			continue
		}
		lic := regexp.MustCompile(`(?m)^License: (.+)$`).FindStringSubmatch(para)
		if !strings.Contains(para, "\nCopyright: ") || lic == nil {
			t.Errorf("paragraph without Copyright or License:\n%s", para)
			continue
		}
		for _, name := range strings.Split(lic[1], " and ") {
			if !defined[name] {
				t.Errorf("license %q has no License paragraph (in:\n%s)", name, para)
			}
		}
	}
}
