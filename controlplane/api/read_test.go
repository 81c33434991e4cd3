package api_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

func testChannels(t *testing.T, e *env) {
	id, ch := e.placeCall(t, e.a, "190", "+375296254099")
	type list struct {
		Channels []struct {
			PBX      string `json:"pbx"`
			Channel  string `json:"channel"`
			UniqueID string `json:"uniqueid"`
			State    string `json:"state"`
		}
		Unavailable []struct{ PBX, Code string }
	}
	for _, token := range []string{e.a.readKey, e.a.operator} {
		var l list
		r := e.s.Do(t, "GET", "/v1/channels", token, nil)
		wantStatus(t, r, 200, "")
		r.JSON(t, &l)
		found := false
		for _, c := range l.Channels {
			if c.PBX != e.a.pbx.ID {
				t.Fatalf("channel of another PBX: %+v", c)
			}
			found = found || c.UniqueID == id && c.Channel == ch && c.State != ""
		}
		if !found || len(l.Unavailable) != 0 {
			t.Fatalf("call %s not listed: %s", id, r.Body)
		}
	}
	t.Run("scope", func(t *testing.T) {
		orig := e.s.APIKey(t, e.a.number, store.ScopeOriginate)
		wantStatus(t, e.s.Do(t, "GET", "/v1/channels", orig, nil), 403, api.CodeForbidden)
	})
	t.Run("offline pbx is listed as unavailable", func(t *testing.T) {
		var l list
		r := e.s.Do(t, "GET", "/v1/channels", e.o.key, nil)
		wantStatus(t, r, 200, "")
		r.JSON(t, &l)
		if len(l.Unavailable) != 1 || l.Unavailable[0].PBX != e.o.pbx.ID || l.Unavailable[0].Code != api.CodePBXOffline {
			t.Fatalf("%s", r.Body)
		}
		wantStatus(t, e.s.Do(t, "GET", "/v1/channels?pbx="+e.o.pbx.ID, e.o.key, nil), 503, api.CodePBXOffline)
	})
	t.Run("several pbxs", func(t *testing.T) {
		var l list
		r := e.s.Do(t, "GET", "/v1/channels", e.m.key, nil)
		wantStatus(t, r, 200, "")
		r.JSON(t, &l)
		if len(l.Unavailable) != 0 {
			t.Fatalf("%s", r.Body)
		}
		wantStatus(t, e.s.Do(t, "GET", "/v1/channels?pbx="+e.m2.ID, e.m.key, nil), 200, "")
	})
	must(t, func() error {
		r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"uniqueid": id})
		if r.Status != 200 {
			return fmt.Errorf("cleanup hangup: %d %s", r.Status, r.Body)
		}
		return nil
	}())
}

func testPBXs(t *testing.T, e *env) {
	type pbx struct {
		ID, Name, Context, Hostname, AMI string
		Connected                        bool
		AgentVersion                     string     `json:"agent_version"`
		AsteriskVersion                  string     `json:"asterisk_version"`
		ConnectedSince                   *time.Time `json:"connected_since"`
	}
	var l struct{ PBXs []pbx }
	r := e.s.Do(t, "GET", "/v1/pbxs", e.a.key, nil)
	wantStatus(t, r, 200, "")
	r.JSON(t, &l)
	if len(l.PBXs) != 1 {
		t.Fatalf("%s", r.Body)
	}
	p := l.PBXs[0]
	if p.ID != e.a.pbx.ID || p.Name != "june-main" || p.Context != "inoffice" || !p.Connected || p.AMI != "up" ||
		p.Hostname != "pbx-june" || p.AgentVersion != "test" || p.AsteriskVersion == "" || p.ConnectedSince == nil {
		t.Fatalf("%+v", p)
	}
	r = e.s.Do(t, "GET", "/v1/pbxs/"+e.a.pbx.ID, e.a.operator, nil)
	wantStatus(t, r, 200, "")
	var one pbx
	r.JSON(t, &one)
	if one.ID != e.a.pbx.ID {
		t.Fatalf("%s", r.Body)
	}
	r = e.s.Do(t, "GET", "/v1/pbxs", e.o.key, nil)
	e2 := struct{ PBXs []pbx }{}
	r.JSON(t, &e2)
	if len(e2.PBXs) != 1 || e2.PBXs[0].Connected || e2.PBXs[0].AMI != "unknown" {
		t.Fatalf("offline pbx: %s", r.Body)
	}
	wantStatus(t, e.s.Do(t, "GET", "/v1/pbxs", e.s.APIKey(t, e.a.number, store.ScopeHangup), nil), 403, api.CodeForbidden)
}

func testFleet(t *testing.T, e *env) {
	type fleet struct {
		Totals struct {
			Agents, Connected int
			AMIUp             int `json:"ami_up"`
		}
		Matched int
		Agents  []struct {
			ID, Enterprise string
			Connected      bool
		}
		NextCursor string `json:"next_cursor"`
	}
	get := func(t *testing.T, query string) fleet {
		t.Helper()
		r := e.s.Do(t, "GET", "/v1/fleet"+query, e.platform, nil)
		wantStatus(t, r, 200, "")
		var f fleet
		r.JSON(t, &f)
		return f
	}
	all := get(t, "")
	if all.Totals.Agents != 6 || all.Totals.Connected != 5 || all.Totals.AMIUp != 5 || all.Matched != 6 || len(all.Agents) != 6 {
		t.Fatalf("%+v", all)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?enterprise=0500", 2},
		{"?connected=false", 1},
		{"?connected=true&ami=up", 5},
		{"?ami=unknown", 1},
		{"?enterprise=0367&connected=true", 1},
		{"?search=JUNE", 1},  // name june-main, host pbx-june
		{"?search=0500", 2},  // enterprise number
		{"?version=test", 5}, // every connected agent of systemtest
		{"?version=9.9.9", 0},
		{"?search=nothing-like-it", 0},
	} {
		if f := get(t, tc.query); f.Matched != tc.want || len(f.Agents) != tc.want || f.Totals.Agents != 6 {
			t.Errorf("%s: matched %d, listed %d, want %d", tc.query, f.Matched, len(f.Agents), tc.want)
		}
	}
	var ids []string
	cursor := ""
	for range 10 {
		f := get(t, "?limit=4&cursor="+cursor)
		for _, a := range f.Agents {
			ids = append(ids, a.ID)
		}
		if cursor = f.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) != 6 || strings.Join(ids, ",") != strings.Join(func() []string {
		var out []string
		for _, a := range all.Agents {
			out = append(out, a.ID)
		}
		return out
	}(), ",") {
		t.Fatalf("paging gave %v", ids)
	}
	for _, tc := range []struct {
		token string
		code  int
	}{{e.a.key, 403}, {e.a.supervisor, 403}, {e.s.JWT(t, "0367", "boss", "telecom_admin"), 403}, {"", 401}} {
		wantStatus(t, e.s.Do(t, "GET", "/v1/fleet", tc.token, nil), tc.code, "")
	}
	wantStatus(t, e.s.Do(t, "GET", "/v1/fleet?connected=maybe", e.platform, nil), 400, api.CodeInvalidRequest)
	wantStatus(t, e.s.Do(t, "GET", "/v1/fleet?limit=0", e.platform, nil), 400, api.CodeInvalidRequest)
}

func testAuditList(t *testing.T, e *env) {
	type page struct {
		Entries []struct {
			ID             int64
			Action, Result string
			ActorID        string `json:"actor_id"`
			RequestID      string `json:"request_id"`
		}
		NextCursor string `json:"next_cursor"`
	}
	r := e.s.Do(t, "GET", "/v1/audit?limit=3", e.b.key, nil)
	wantStatus(t, r, 200, "")
	var p page
	r.JSON(t, &p)
	if len(p.Entries) != 3 || p.NextCursor == "" {
		t.Fatalf("%s", r.Body)
	}
	// b sees only b's rows.
	rows, _, err := e.s.Store().ListAudit(t.Context(), e.b.ent.ID, "", store.MaxAuditPageSize)
	must(t, err)
	own := map[int64]bool{}
	for _, row := range rows {
		own[row.ID] = true
	}
	seen := 0
	for cursor := ""; ; {
		var p page
		e.s.Do(t, "GET", "/v1/audit?limit=2&cursor="+cursor, e.b.supervisor, nil).JSON(t, &p)
		for _, en := range p.Entries {
			if !own[en.ID] {
				t.Fatalf("row %d is not enterprise b's", en.ID)
			}
			seen++
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if seen != len(rows) {
		t.Fatalf("paged %d rows, enterprise has %d", seen, len(rows))
	}
	wantStatus(t, e.s.Do(t, "GET", "/v1/audit", e.b.operator, nil), 403, api.CodeForbidden)
	wantStatus(t, e.s.Do(t, "GET", "/v1/audit", e.b.readKey, nil), 403, api.CodeForbidden)
	wantStatus(t, e.s.Do(t, "GET", "/v1/audit?cursor=abc", e.b.key, nil), 400, api.CodeInvalidRequest)
}
