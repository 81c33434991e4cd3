package depcheck

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/switchboard-pbx/switchboard/"

// contained lists each contained dependency (an import path prefix) and the
// packages, relative to the module, that may import it.
var contained = []struct {
	dep     string
	allowed []string
	// tests: packages whose test files only may import it (a client in a
	// test), never their code.
	tests []string
}{
	{"github.com/hashicorp/yamux", []string{"protocol/tunnel"}, nil},
	{"github.com/coder/websocket", []string{"protocol/tunnel", "controlplane/events", "cmd/switchboard"}, []string{"controlplane/api", "controlplane/cluster", "internal/realpbx"}},
	{"github.com/jackc/pgx", []string{"controlplane/store"}, nil},
	{"modernc.org/sqlite", []string{"controlplane/store"}, nil},
	// A browser driver: the web console's browser tests only, never code
	// that ships (chromedp/chromedp and its chromedp/cdproto).
	{"github.com/chromedp", nil, []string{"controlplane/console"}},
}

// pkg is what `go list -json` says about one package.
type pkg struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
}

// listModule returns every package of the module with the imports of its
// files, its in-package tests and its external (_test package) tests.
func listModule(t *testing.T) []pkg {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestContainedDependencies fails when a package outside a dependency's
// allow-list imports it, and when an allow-listed package no longer does
// (the list, and the docs that repeat it, would then be wrong), its
// tests included.
func TestContainedDependencies(t *testing.T) {
	pkgs := listModule(t)
	for _, c := range contained {
		users := map[string]bool{}
		for _, p := range pkgs {
			rel := strings.TrimPrefix(p.ImportPath, module)
			for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
				if imp != c.dep && !strings.HasPrefix(imp, c.dep+"/") {
					continue
				}
				users[rel] = true
				if slices.Contains(c.tests, rel) && !slices.Contains(p.Imports, imp) {
					continue
				}
				if !slices.Contains(c.allowed, rel) {
					t.Errorf("%s imports %s; only %v may (see internal/depcheck/doc.go)", rel, imp, c.allowed)
				}
			}
		}
		for _, a := range slices.Concat(c.allowed, c.tests) {
			if !users[a] {
				t.Errorf("%s is allowed to import %s but does not: drop it from the allow-list and the docs", a, c.dep)
			}
		}
	}
}
