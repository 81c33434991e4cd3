package api_test

import (
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// TestOpenAPIDocumentsEveryRoute walks the route table and fails when a
// route is missing from openapi.json, or when the document describes a
// route nobody serves.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	a := bareAPI(t, storetest.OpenSQLite(t), fleet.NewRegistry(nil), api.Config{})
	mux := a.Mux()
	routes := a.RoutePatterns()
	if len(routes) < 28 {
		t.Fatalf("only %d routes", len(routes))
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	for _, pattern := range routes {
		method, path, _ := strings.Cut(pattern, " ")
		// The route is really on the mux: a request for it lands on it.
		req := httptest.NewRequest(method, param.ReplaceAllString(path, "x"), nil)
		if _, got := mux.Handler(req); got != pattern {
			t.Errorf("%s: mux routes it to %q", pattern, got)
		}
		if !documented[pattern] {
			t.Errorf("route %s is missing from openapi.json", pattern)
		}
	}
	for op := range documented {
		if !slices.Contains(routes, op) {
			t.Errorf("openapi.json documents %s, which no route serves", op)
		}
	}
}
