package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// testHungupBy: a call ended through the API reads canceled (before it was
// answered) or completed (after), with hungup_by naming who asked: the API
// key's public id, or the operator's sub.
func testHungupBy(t *testing.T, e *env) {
	keyID, _ := auth.ParseAPIKeyID(e.a.key)
	for _, tc := range []struct {
		name, to, token, by, status string
	}{
		{"before answer, by API key", "5550000", e.a.key, keyID, "canceled"}, // 5550000 rings forever
		{"after answer, by API key", "+375296254070", e.a.key, keyID, "completed"},
		{"after answer, by an operator", "+375296254071", e.a.supervisor, "sup-0367", "completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, _ := e.placeCall(t, e.a, "160", tc.to)
			if tc.status == "completed" {
				waitCall(t, e, id, func(c callState) bool { return c.Status == "in-progress" })
			} else {
				waitCall(t, e, id, func(c callState) bool { return c.Status == "ringing" })
			}
			wantStatus(t, e.s.Do(t, "DELETE", "/v1/calls/"+id, tc.token, nil), http.StatusOK, "")
			c := waitCall(t, e, id, func(c callState) bool { return c.EndedAt != "" })
			if c.Status != tc.status || c.HungupBy != tc.by {
				t.Fatalf("ended %s, hungup_by %q; want %s by %q", c.Status, c.HungupBy, tc.status, tc.by)
			}
		})
	}
}

type callState struct {
	Status   string `json:"status"`
	HungupBy string `json:"hungup_by"`
	EndedAt  string `json:"ended_at"`
}

func waitCall(t *testing.T, e *env, id string, ok func(callState) bool) callState {
	t.Helper()
	var c callState
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := e.s.Do(t, "GET", "/v1/calls/"+id, e.a.key, nil)
		if r.Status == http.StatusOK {
			r.JSON(t, &c)
			if ok(c) {
				return c
			}
		} else if !strings.Contains(string(r.Body), "not_found") {
			t.Fatalf("GET /v1/calls/%s: %d %s", id, r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("call %s: last state %+v", id, c)
	return c
}
