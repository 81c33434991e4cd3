package events_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestCallHistoryAPI: GET /v1/calls filters and pages newest first;
// GET /v1/calls/{id} is confined to the caller's enterprise.
func TestCallHistoryAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true})
	a, b := e.tenant(t, "0367"), e.tenant(t, "0420")
	p1, p2 := e.injector(t, "0367"), e.injector(t, "0367")
	pb := e.injector(t, "0420")
	// The injector's calls alternate started/ended: 3 batches of 2 are
	// three completed calls 150→151 per PBX.
	for range 3 {
		p1.batch(t, 2, 0)
		p2.batch(t, 2, 0)
	}
	pb.batch(t, 2, 0)
	// One live call from 150 to +375…, on p1.
	live := time.Now()
	stored, err := e.store().StoreAgentEvents(context.Background(), p1.ag.ID, p1.ag.EnterpriseID, []protocol.Event{{
		Seq: p1.next, Type: protocol.EventCallStarted, Time: live, CallID: "live-1", From: "150", To: "+375296254070",
		Direction: "outbound", Status: protocol.CallRinging}})
	if err != nil || len(stored) != 1 {
		t.Fatal(err)
	}

	type page struct {
		Calls []struct {
			CallID string `json:"call_id"`
			PBX    string `json:"pbx"`
			Status string `json:"status"`
		} `json:"calls"`
		NextCursor string `json:"next_cursor"`
	}
	list := func(key, q string) (page, int) {
		t.Helper()
		r := e.do(t, "GET", "/v1/calls?"+q, key, nil)
		var p page
		if r.status == 200 {
			r.decode(t, &p)
		}
		return p, r.status
	}
	ids := func(p page) string {
		var out []string
		for _, c := range p.Calls {
			out = append(out, c.CallID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name, q string
		n       int
	}{
		{"all", "", 7},
		{"status", "status=completed", 6},
		{"ringing", "status=ringing", 1},
		{"pbx", "pbx=" + p2.ag.ID, 3},
		{"number", "number=" + url.QueryEscape("+375296254070"), 1},
		{"extension", "extension=151", 6},
		{"direction", "direction=outbound", 1},
		{"since now", "since=" + url.QueryEscape(live.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)), 1},
		{"until", "until=" + url.QueryEscape(live.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)), 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, status := list(a.key, tc.q)
			if status != 200 || len(p.Calls) != tc.n {
				t.Fatalf("GET /v1/calls?%s = %d, %d calls (%s), want %d", tc.q, status, len(p.Calls), ids(p), tc.n)
			}
		})
	}
	// Pages of 3, newest first, end with no cursor, and cover all 7.
	var seen []string
	cursor := ""
	for range 5 {
		p, status := list(a.key, "limit=3&cursor="+url.QueryEscape(cursor))
		if status != 200 {
			t.Fatalf("page = %d", status)
		}
		seen = append(seen, ids(p))
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if all := strings.Fields(strings.Join(seen, " ")); len(all) != 7 || all[0] != "live-1" || len(seen) != 3 {
		t.Fatalf("pages = %q", seen)
	}
	for _, q := range []string{"status=done", "since=yesterday", "limit=0", "limit=501", "cursor=zzz", "pbx=" + pb.ag.ID} {
		want := 400
		if strings.HasPrefix(q, "pbx=") {
			want = 404
		}
		if _, status := list(a.key, q); status != want {
			t.Errorf("GET /v1/calls?%s = %d, want %d", q, status, want)
		}
	}

	// Tenancy: B sees only its call; A's call is 404 to B.
	if p, _ := list(b.key, ""); len(p.Calls) != 1 || p.Calls[0].PBX != pb.ag.ID {
		t.Fatalf("enterprise B lists %+v", p)
	}
	if r := e.do(t, "GET", "/v1/calls/live-1", b.key, nil); r.status != 404 || !strings.Contains(string(r.body), `"not_found"`) {
		t.Fatalf("B reads A's call: %d %s", r.status, r.body)
	}
	d := e.call(t, a.key, "live-1")
	if d.Status != protocol.CallRinging || d.EndedAt != nil || len(d.Events) != 1 || d.Events[0].Seq != stored[0].Seq {
		t.Fatalf("live call = %+v", d)
	}
	// Two PBXs reuse a call id (injectors number calls alike): without
	// ?pbx= the most recent is shown, ?pbx= picks one, and the timeline
	// is that PBX's alone.
	if d := e.call(t, a.key, "call-0"); d.PBX != p2.ag.ID {
		t.Fatalf("call-0 = %+v, want the most recent (PBX %s)", d, p2.ag.ID)
	}
	r := e.do(t, "GET", "/v1/calls/call-0?pbx="+p1.ag.ID, a.key, nil)
	var d1 callDetail
	r.decode(t, &d1)
	if r.status != 200 || d1.PBX != p1.ag.ID || len(d1.Events) != 2 || d1.Events[1].Type != protocol.EventCallEnded || d1.Events[0].PBX != p1.ag.ID {
		t.Fatalf("call-0 of %s = %d %+v", p1.ag.ID, r.status, d1)
	}
	if r := e.do(t, "GET", "/v1/calls/call-0?pbx="+pb.ag.ID, a.key, nil); r.status != 404 {
		t.Fatalf("call of another enterprise's PBX = %d", r.status)
	}
	// History is readable with channels:read too, not with originate only.
	if r := e.do(t, "GET", "/v1/calls", e.apiKey(t, "0367", auth.ScopeChannelsRead), nil); r.status != 200 {
		t.Fatalf("channels:read key = %d", r.status)
	}
	if r := e.do(t, "GET", "/v1/calls", e.apiKey(t, "0367", auth.ScopeOriginate), nil); r.status != 403 {
		t.Fatalf("originate-only key = %d", r.status)
	}
	// POST /v1/calls stays the api package's (its validation answers).
	if r := e.do(t, "POST", "/v1/calls", a.key, map[string]any{}); r.status != 400 {
		t.Fatalf("POST /v1/calls = %d %s", r.status, r.body)
	}
}
