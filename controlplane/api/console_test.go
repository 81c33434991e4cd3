package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/console"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// TestConsoleFiles: the console is served at / and /assets/ by the API's
// one route table, needs no credentials, carries its security headers,
// revalidates with its ETag, and every file its page or modules name is
// served; other paths keep the API's 404 and 405.
func TestConsoleFiles(t *testing.T) {
	t.Parallel()
	s := systemtest.New(t, systemtest.Options{})
	r := s.Do(t, "GET", "/", "", nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": console.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-cache",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("GET / %s = %q, want %q", k, got, want)
		}
	}
	// Every file named by the page and by the modules' imports is served,
	// with its type, and nothing is loaded from another host.
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"|from '\./([a-z]+\.js)'`)
	seen := map[string]bool{}
	queue := []string{"/"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		r := s.Do(t, "GET", path, "", nil)
		if r.Status != 200 {
			t.Fatalf("GET %s = %d", path, r.Status)
		}
		if strings.Contains(string(r.Body), "http://") || strings.Contains(string(r.Body), "https://") && !strings.HasSuffix(path, "webhooks.js") {
			t.Errorf("%s names another host", path)
		}
		for _, m := range refs.FindAllStringSubmatch(string(r.Body), -1) {
			ref := m[1]
			if ref == "" {
				ref = "/assets/js/" + m[2]
			}
			if !seen[ref] {
				seen[ref] = true
				queue = append(queue, ref)
			}
		}
		if strings.HasSuffix(path, ".js") && r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", path, r.Header.Get("Content-Type"))
		}
	}
	if len(seen) != len(console.Names())-1 { // index.html is "/"
		t.Errorf("reached %d files from the page, embedded %d: %v vs %v", len(seen), len(console.Names())-1, seen, console.Names())
	}
	etag := r.Header.Get("ETag")
	if got := s.Do(t, "GET", "/", "", nil, "If-None-Match", etag); got.Status != http.StatusNotModified {
		t.Errorf("revalidation with ETag %s: %d", etag, got.Status)
	}
	wantStatus(t, s.Do(t, "POST", "/", "", nil), 405, "method_not_allowed")
	wantStatus(t, s.Do(t, "GET", "/assets/nope.js", "", nil), 404, "not_found")
	wantStatus(t, s.Do(t, "GET", "/assets/index.html", "", nil), 404, "not_found")
	wantStatus(t, s.Do(t, "GET", "/elsewhere", "", nil), 404, "not_found")
}
