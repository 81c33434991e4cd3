package api

import (
	"net/http"

	"github.com/switchboard-pbx/switchboard/controlplane/console"
)

// console serves the web console's files (controlplane/console) at "/"
// and "/assets/…"; any other path outside /v1/ and /api/ is the API's 404.
// The files need no credentials: everything they show comes from the API.
func (a *API) console(c *call) error {
	f, ok := console.Lookup(c.r.URL.Path)
	if !ok {
		return a.unknownRoute(c)
	}
	if c.r.Method != http.MethodGet && c.r.Method != http.MethodHead {
		c.setHeader("Allow", "GET, HEAD")
		return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed on %s", c.r.Method, c.r.URL.Path)
	}
	c.serveOwn(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { console.Serve(w, r, f) }))
	return nil
}
