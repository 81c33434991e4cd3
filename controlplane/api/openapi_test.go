package api_test

import (
	"encoding/json"
	"net/http"
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

// serverRoutes are registered by controlplane.Server itself; the document
// describes them too.
var serverRoutes = []string{"GET /agent/v1/connect", "GET /healthz", "GET /readyz"}

// TestOpenAPIDocumentsEveryRoute walks the routes the API and the events
// service register on a mux (as the server chains them) and fails when
// one is missing from openapi.json, or when the document describes a
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
	reg := fleet.NewRegistry(nil)
	a, err := api.New(api.Config{Store: storetest.OpenSQLite(t), Directory: reg, Caller: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Register needs no store: it only installs the handlers.
	ev, err := events.New(events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a.Register(mux)
	ev.Register(mux)
	routes := a.Routes()
	if len(routes) < 15 {
		t.Fatalf("only %d routes", len(routes))
	}
	evRoutes := ev.RoutePatterns()
	if len(evRoutes) < 9 {
		t.Fatalf("only %d events routes", len(evRoutes))
	}
	routes = append(routes, evRoutes...)
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
		if !slices.Contains(routes, op) && !slices.Contains(serverRoutes, op) {
			t.Errorf("openapi.json documents %s, which no route serves", op)
		}
	}
	for _, op := range serverRoutes {
		if !documented[op] {
			t.Errorf("server route %s is missing from openapi.json", op)
		}
	}
}
