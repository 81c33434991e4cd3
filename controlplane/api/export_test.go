package api

import "net/http"

// RoutePatterns lists the "METHOD /path" patterns of the route table (the
// catch-alls for unknown paths left out), for the OpenAPI completeness
// test.
func (a *API) RoutePatterns() []string {
	var out []string
	for _, rt := range a.routes {
		if rt.method != "" {
			out = append(out, rt.pattern())
		}
	}
	return out
}

// Mux is the API's route table as a mux, to check where a request lands.
func (a *API) Mux() *http.ServeMux { return a.mux }
