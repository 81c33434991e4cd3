package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// testPBXByName: everywhere a PBX is named, its name works as well as its
// id, and an enterprise with two PBXs is told their names when it names
// none.
func testPBXByName(t *testing.T, e *env) {
	t.Run("v1 originate by name", func(t *testing.T) {
		r := e.s.Do(t, "POST", "/v1/calls", e.m.key, map[string]any{"from": "150", "to": "151", "pbx": "multi-2"})
		wantStatus(t, r, http.StatusCreated, "")
		if got := jsonField(t, r.Body, "pbx"); got != e.m2.ID {
			t.Fatalf("placed on %s, want multi-2 (%s)", got, e.m2.ID)
		}
	})
	t.Run("pbx required lists the names", func(t *testing.T) {
		r := e.s.Do(t, "POST", "/v1/calls", e.m.key, map[string]any{"from": "150", "to": "151"})
		wantStatus(t, r, http.StatusBadRequest, "pbx_required")
		msg := jsonErrorMessage(t, r)
		if !strings.Contains(msg, "multi-1 ("+e.m.pbx.ID+")") || !strings.Contains(msg, "multi-2 ("+e.m2.ID+")") {
			t.Fatalf("message %q", msg)
		}
	})
	t.Run("filters by name", func(t *testing.T) {
		for _, path := range []string{"/v1/pbxs/multi-2", "/v1/calls?pbx=multi-2", "/v1/events?after=0&pbx=multi-2", "/v1/channels?pbx=multi-2"} {
			wantStatus(t, e.s.Do(t, "GET", path, e.m.key, nil), http.StatusOK, "")
		}
		// Another enterprise's name is as unknown as a made-up one.
		wantStatus(t, e.s.Do(t, "GET", "/v1/calls?pbx=multi-2", e.a.key, nil), http.StatusNotFound, "not_found")
	})
	t.Run("legacy: pbx by name, and its absence is a 422 naming them", func(t *testing.T) {
		q := "code=150&phone=151&clientId=" + url.QueryEscape(e.m.key)
		r := e.s.Do(t, "GET", "/api/makecallexternal?"+q, "", nil)
		if r.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(string(r.Body), `{"detail":"Call initiation failed: field \"pbx\" is required`) ||
			!strings.Contains(string(r.Body), "multi-1") {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		r = e.s.Do(t, "GET", "/api/makecallexternal?"+q+"&pbx=multi-1", "", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
	t.Run("legacy: bad input is a 422, not a 500", func(t *testing.T) {
		for _, path := range []string{
			"/api/makecallexternal?code=150&phone=abc&clientId=" + url.QueryEscape(e.a.key),
			"/api/monitor?action=09&target=x&monitor_from=151&clientId=" + url.QueryEscape(e.a.key),
		} {
			r := e.s.Do(t, "GET", path, "", nil)
			if r.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(string(r.Body), `{"detail":"`) {
				t.Fatalf("%s: %d %s", path, r.Status, r.Body)
			}
		}
	})
}
