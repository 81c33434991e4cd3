package api_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
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

// TestOpenAPIEventTypes: every list of event types in openapi.json (the
// Event schema's type, GET /v1/events ?types=, a webhook's event_types)
// names exactly the types a filter accepts (events.EventTypes).
func TestOpenAPIEventTypes(t *testing.T) {
	var doc any
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(events.EventTypes)
	slices.Sort(want)
	lists := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if enum, ok := v["enum"].([]any); ok && slices.Contains(enum, any("call.started")) {
				lists++
				var got []string
				for _, e := range enum {
					got = append(got, e.(string))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s: enum %v, want %v", path, got, want)
				}
			}
			for k, x := range v {
				walk(path+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s/%d", path, i), x)
			}
		}
	}
	walk("", doc)
	if lists < 3 {
		t.Errorf("found %d lists of event types, want at least 3 (Event.type, ?types=, event_types)", lists)
	}
}
