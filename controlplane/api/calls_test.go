package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// TestAPI runs every route against one control plane per engine, with real
// agents on the real tunnel in front of amitest.
func TestAPI(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		for _, tc := range []struct {
			name string
			fn   func(*testing.T, *env)
		}{
			{"originate", testOriginate},
			{"originate errors", testOriginateErrors},
			{"numbers as pasted", testNumbersAsPasted},
			{"pbx by name", testPBXByName},
			{"audit intent before action", testIntentBeforeAction},
			{"hungup_by", testHungupBy},
			{"idempotency", testIdempotency},
			{"hangup", testHangup},
			{"hangup errors", testHangupErrors},
			{"monitor", testMonitor},
			{"tenant isolation", testTenantIsolation},
			{"channels", testChannels},
			{"pbxs", testPBXs},
			{"fleet", testFleet},
			{"audit", testAuditList},
			{"legacy", testLegacy},
			{"legacy hangup", testLegacyHangup},
			{"middleware", testMiddleware},
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) })
		}
	})
}

func testOriginate(t *testing.T, e *env) {
	for _, tc := range []struct {
		name, token string
		actor       string
	}{
		{"api key", e.a.key, store.ActorAPIKey},
		{"operator jwt", e.a.operator, store.ActorOperator},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/calls", tc.token, map[string]any{
				"from": "150", "to": "+375296254070", "caller_id": "Sales <150>", "timeout_s": 20, "variables": map[string]string{"CRM_ID": "42"},
			})
			wantStatus(t, r, http.StatusCreated, "")
			var c struct {
				CallID, Status, PBX, From, To, Channel string
				CreatedAt                              time.Time `json:"created_at"`
			}
			r.JSON(t, &c)
			c.CallID = jsonField(t, r.Body, "call_id")
			if c.CallID == "" || c.Status != "queued" || c.PBX != e.a.pbx.ID || c.From != "150" || c.To != "+375296254070" || c.Channel != "Local/150@inoffice" {
				t.Fatalf("response %s", r.Body)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			m, err := e.a.pbx.AMI.WaitAction(ctx, "Originate")
			must(t, err)
			if m.Get("ChannelId") != c.CallID || m.Get("Channel") != "Local/150@inoffice" || m.Get("Data") != "Local/+375296254070@inoffice" {
				t.Fatalf("AMI got %v", m)
			}
			row := auditRow(t, e.s, e.a.ent.ID, r.Header.Get(api.RequestIDHeader))
			if row.Action != api.AuditOriginate || row.Result != store.ResultSuccess || row.ActorType != tc.actor ||
				row.UniqueID != c.CallID || row.FromExt != "150" || row.ToNumber != "+375296254070" || row.AgentID != e.a.pbx.ID || row.ClientAddr != "127.0.0.1" {
				t.Fatalf("audit row %+v", row)
			}
		})
	}
}

func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	s, _ := m[field].(string)
	return s
}

func testOriginateErrors(t *testing.T, e *env) {
	big := `{"from":"150","to":"151","caller_id":"` + strings.Repeat("x", api.DefaultMaxBodyBytes) + `"}`
	for _, tc := range []struct {
		name   string
		token  string
		body   any
		status int
		code   string
		msg    string // part of the message
		audit  bool   // an audit row is expected (authenticated requests)
	}{
		{"no credentials", "", map[string]any{"from": "150", "to": "151"}, 401, api.CodeUnauthorized, "", false},
		{"bad key", "sbk_key_aaaaaaaaaaaaaaaa_" + strings.Repeat("a", 52), map[string]any{"from": "150", "to": "151"}, 401, api.CodeUnauthorized, "", false},
		{"garbage jwt", "eyJhbGciOiJIUzI1NiJ9.e30.x", map[string]any{"from": "150", "to": "151"}, 401, api.CodeUnauthorized, "", false},
		{"scope missing", e.a.readKey, map[string]any{"from": "150", "to": "151"}, 403, api.CodeForbidden, "originate", true},
		{"unknown field", e.a.key, `{"from":"150","to":"151","timout_s":5}`, 400, api.CodeInvalidRequest, `unknown field "timout_s"`, true},
		{"wrong type", e.a.key, `{"from":150,"to":"151"}`, 400, api.CodeInvalidRequest, `field "from" must be a string`, true},
		{"missing to", e.a.key, map[string]any{"from": "150"}, 400, api.CodeInvalidRequest, `"to" is required`, true},
		{"bad number", e.a.key, map[string]any{"from": "150", "to": "151;rm -rf"}, 400, api.CodeInvalidRequest, `"to" must be digits`, true},
		{"empty body", e.a.key, "", 400, api.CodeInvalidRequest, "empty", true},
		{"two objects", e.a.key, `{"from":"150","to":"151"}{}`, 400, api.CodeInvalidRequest, "exactly one", true},
		{"malformed", e.a.key, `{"from":`, 400, api.CodeInvalidRequest, "malformed", true},
		{"timeout range", e.a.key, map[string]any{"from": "150", "to": "151", "timeout_s": 99999}, 400, api.CodeInvalidRequest, "timeout_s", true},
		{"body too large", e.a.key, big, 413, api.CodeBodyTooLarge, "", true},
		{"agent validation", e.a.key, map[string]any{"from": "150", "to": "151", "variables": map[string]string{"1BAD": "x"}}, 400, api.CodeInvalidRequest, "", true},
		{"unknown pbx", e.a.key, map[string]any{"from": "150", "to": "151", "pbx": "agt_nope"}, 404, api.CodeNotFound, "agt_nope", true},
		{"pbx required", e.m.key, map[string]any{"from": "150", "to": "151"}, 400, api.CodePBXRequired, e.m2.ID, true},
		{"pbx offline", e.o.key, map[string]any{"from": "150", "to": "151"}, 503, api.CodePBXOffline, "", true},
		{"ami timeout", e.slow.key, map[string]any{"from": "150", "to": "151"}, 504, api.CodeAMITimeout, "1s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/calls", tc.token, tc.body)
			wantStatus(t, r, tc.status, tc.code)
			if msg := jsonErrorMessage(t, r); !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not mention %q", msg, tc.msg)
			}
			if tc.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if !tc.audit {
				return
			}
			ent := e.a.ent.ID
			switch tc.token {
			case e.m.key:
				ent = e.m.ent.ID
			case e.o.key:
				ent = e.o.ent.ID
			case e.slow.key:
				ent = e.slow.ent.ID
			}
			row := auditRow(t, e.s, ent, r.Header.Get(api.RequestIDHeader))
			if row.Result != store.ResultError || row.ErrorCode != tc.code || row.Action != api.AuditOriginate {
				t.Fatalf("audit row %+v", row)
			}
		})
	}
	t.Run("pbx of enterprise m picked explicitly", func(t *testing.T) {
		r := e.s.Do(t, "POST", "/v1/calls", e.m.key, map[string]any{"from": "150", "to": "151", "pbx": e.m2.ID})
		wantStatus(t, r, 201, "")
		if jsonField(t, r.Body, "pbx") != e.m2.ID {
			t.Fatalf("placed on %s", r.Body)
		}
	})
}

func jsonErrorMessage(t *testing.T, r interface{ JSON(testing.TB, any) }) string {
	t.Helper()
	var body struct{ Error struct{ Message string } }
	r.JSON(t, &body)
	return body.Error.Message
}

func originates(e *env, tn *tenant) int {
	n := 0
	for _, m := range tn.pbx.AMI.Actions() {
		if strings.EqualFold(m.Action(), "Originate") {
			n++
		}
	}
	return n
}

func testIdempotency(t *testing.T, e *env) {
	body := map[string]any{"from": "150", "to": "+375296254070"}
	key := fmt.Sprintf("idem-%d", time.Now().UnixNano())
	before := originates(e, e.a)
	first := e.s.Do(t, "POST", "/v1/calls", e.a.key, body, api.IdempotencyKeyHeader, key)
	wantStatus(t, first, 201, "")
	// The retry comes from another credential of the same enterprise: keys
	// are the enterprise's, as a CRM with several API keys expects.
	for _, token := range []string{e.a.key, e.a.operator} {
		again := e.s.Do(t, "POST", "/v1/calls", token, body, api.IdempotencyKeyHeader, key)
		wantStatus(t, again, 201, "")
		if string(again.Body) != string(first.Body) || again.Header.Get(api.IdempotentReplayHeader) != "true" {
			t.Fatalf("replay %s (replayed=%q), first %s", again.Body, again.Header.Get(api.IdempotentReplayHeader), first.Body)
		}
		row := auditRow(t, e.s, e.a.ent.ID, again.Header.Get(api.RequestIDHeader))
		if row.Result != store.ResultSuccess || !strings.Contains(string(row.Details), "idempotent_replay") {
			t.Fatalf("replay audit row %+v", row)
		}
	}
	if n := originates(e, e.a) - before; n != 1 {
		t.Fatalf("%d Originate actions reached Asterisk, want 1", n)
	}
	conflict := e.s.Do(t, "POST", "/v1/calls", e.a.key, map[string]any{"from": "150", "to": "151"}, api.IdempotencyKeyHeader, key)
	wantStatus(t, conflict, 409, api.CodeIdempotencyConflict)
	if auditRow(t, e.s, e.a.ent.ID, conflict.Header.Get(api.RequestIDHeader)).ErrorCode != api.CodeIdempotencyConflict {
		t.Fatal("409 not audited")
	}
	// Another enterprise's identical key is its own.
	other := e.s.Do(t, "POST", "/v1/calls", e.b.key, body, api.IdempotencyKeyHeader, key)
	wantStatus(t, other, 201, "")
	if jsonField(t, other.Body, "call_id") == jsonField(t, first.Body, "call_id") {
		t.Fatal("enterprise b got enterprise a's replay")
	}
	t.Run("concurrent retries dial once", func(t *testing.T) {
		key := key + "-concurrent"
		before := originates(e, e.a)
		var wg sync.WaitGroup
		bodies := make([]string, 4)
		for i := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.s.DoErr("POST", "/v1/calls", e.a.key, body, api.IdempotencyKeyHeader, key)
				if err == nil && r.Status == 201 {
					bodies[i] = string(r.Body)
				}
			}()
		}
		wg.Wait()
		for _, b := range bodies {
			if b == "" || b != bodies[0] {
				t.Fatalf("bodies differ or failed: %q", bodies)
			}
		}
		if n := originates(e, e.a) - before; n != 1 {
			t.Fatalf("%d Originate actions, want 1", n)
		}
	})
	t.Run("bad key", func(t *testing.T) {
		r := e.s.Do(t, "POST", "/v1/calls", e.a.key, body, api.IdempotencyKeyHeader, strings.Repeat("k", 300))
		wantStatus(t, r, 400, api.CodeInvalidRequest)
	})
}

func testHangup(t *testing.T, e *env) {
	type hungup struct {
		PBX          string    `json:"pbx"`
		TerminatedAt time.Time `json:"terminated_at"`
		Count        int       `json:"count"`
		Hungup       []struct {
			Channel, UniqueID string
			HungupAt          time.Time `json:"hungup_at"`
			DurationMS        int64     `json:"duration_ms"`
		}
	}
	check := func(t *testing.T, r interface{ JSON(testing.TB, any) }, channel, uniqueid string) {
		t.Helper()
		var h hungup
		r.JSON(t, &h)
		if h.PBX != e.a.pbx.ID || h.Count != 1 || len(h.Hungup) != 1 || h.Hungup[0].Channel != channel || h.TerminatedAt.IsZero() || h.Hungup[0].DurationMS < 0 {
			t.Fatalf("hangup response %+v", h)
		}
		if uniqueid != "" && jsonUniqueID(t, r) != uniqueid {
			t.Fatalf("hung up uniqueid %s, want %s", jsonUniqueID(t, r), uniqueid)
		}
	}
	t.Run("by uniqueid", func(t *testing.T) {
		id, ch := e.placeCall(t, e.a, "150", "+375296254070")
		time.Sleep(20 * time.Millisecond) // a measurable duration
		r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"uniqueid": id, "reason": "customer asked"})
		wantStatus(t, r, 200, "")
		check(t, r, ch, id)
		row := auditRow(t, e.s, e.a.ent.ID, r.Header.Get(api.RequestIDHeader))
		if row.Action != api.AuditHangup || row.Result != store.ResultSuccess || row.UniqueID != id || row.Channel != ch || row.Reason != "customer asked" {
			t.Fatalf("audit row %+v", row)
		}
	})
	t.Run("by channel with supervisor jwt", func(t *testing.T) {
		id, ch := e.placeCall(t, e.a, "151", "+375296254071")
		r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.supervisor, map[string]any{"channel": ch, "cause": 17})
		wantStatus(t, r, 200, "")
		check(t, r, ch, id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			m, err := e.a.pbx.AMI.WaitAction(ctx, "Hangup")
			must(t, err)
			if m.Get("Channel") == ch {
				if m.Get("Cause") != "17" {
					t.Fatalf("Hangup cause %q", m.Get("Cause"))
				}
				break
			}
		}
	})
	t.Run("delete by id", func(t *testing.T) {
		id, ch := e.placeCall(t, e.a, "152", "+375296254072")
		r := e.s.Do(t, "DELETE", "/v1/calls/"+id+"?reason=done", e.a.key, nil)
		wantStatus(t, r, 200, "")
		check(t, r, ch, id)
		again := e.s.Do(t, "DELETE", "/v1/calls/"+id, e.a.key, nil)
		wantStatus(t, again, 404, api.CodeNotFound)
	})
	t.Run("all", func(t *testing.T) {
		e.placeCall(t, e.a, "153", "+375296254073")
		r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"all": true})
		wantStatus(t, r, 200, "")
		var h hungup
		r.JSON(t, &h)
		if h.Count < 2 || len(h.Hungup) != h.Count {
			t.Fatalf("hangup all: %s", r.Body)
		}
	})
}

func jsonUniqueID(t *testing.T, r interface{ JSON(testing.TB, any) }) string {
	var h struct {
		Hungup []struct {
			UniqueID string `json:"uniqueid"`
		}
	}
	r.JSON(t, &h)
	if len(h.Hungup) == 0 {
		return ""
	}
	return h.Hungup[0].UniqueID
}

func testHangupErrors(t *testing.T, e *env) {
	for _, tc := range []struct {
		name   string
		token  string
		ent    *tenant
		body   any
		status int
		code   string
	}{
		{"operator role", e.a.operator, e.a, map[string]any{"uniqueid": "x"}, 403, api.CodeForbidden},
		{"scope missing", e.a.readKey, e.a, map[string]any{"uniqueid": "x"}, 403, api.CodeForbidden},
		{"nothing named", e.a.key, e.a, map[string]any{"reason": "x"}, 400, api.CodeInvalidRequest},
		{"all with channel", e.a.key, e.a, map[string]any{"all": true, "channel": "SIP/1"}, 400, api.CodeInvalidRequest},
		{"cause range", e.a.key, e.a, map[string]any{"uniqueid": "x", "cause": 500}, 400, api.CodeInvalidRequest},
		{"no such uniqueid", e.a.key, e.a, map[string]any{"uniqueid": "1700000000.999"}, 404, api.CodeNotFound},
		{"no such channel", e.a.supervisor, e.a, map[string]any{"channel": "PJSIP/999-00000001"}, 404, api.CodeNotFound},
		{"forced unknown channel", e.a.key, e.a, map[string]any{"channel": "PJSIP/999-00000001", "force": true}, 404, api.CodeNotFound},
		{"offline", e.o.key, e.o, map[string]any{"uniqueid": "x"}, 503, api.CodePBXOffline},
		{"pbx required", e.m.key, e.m, map[string]any{"uniqueid": "x"}, 400, api.CodePBXRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/calls/hangup", tc.token, tc.body)
			wantStatus(t, r, tc.status, tc.code)
			rid := r.Header.Get(api.RequestIDHeader)
			row := auditRow(t, e.s, tc.ent.ent.ID, rid)
			if row.Result != store.ResultError || row.ErrorCode != tc.code || row.Action != api.AuditHangup {
				t.Fatalf("audit row %+v", row)
			}
			att, ok := hangupAttempt(t, e.s, tc.ent.ent.ID, rid)
			if !ok || att.ErrorCode != tc.code || att.Message == "" {
				t.Fatalf("hangup attempt %+v (found %v)", att, ok)
			}
		})
	}
	t.Run("ami timeout", func(t *testing.T) {
		// Hangup of a live channel on the slow PBX: Originate is delayed
		// past the timeout but still happens, so the channel appears.
		r := e.s.Do(t, "POST", "/v1/calls", e.slow.key, map[string]any{"from": "150", "to": "151"})
		wantStatus(t, r, 504, api.CodeAMITimeout)
		deadline := time.Now().Add(5 * time.Second)
		var ch string
		for ch == "" && time.Now().Before(deadline) {
			var list struct{ Channels []struct{ Channel string } }
			e.s.Do(t, "GET", "/v1/channels", e.slow.key, nil).JSON(t, &list)
			if len(list.Channels) > 0 {
				ch = list.Channels[0].Channel
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ch == "" {
			t.Fatal("the delayed originate never produced a channel")
		}
		r = e.s.Do(t, "POST", "/v1/calls/hangup", e.slow.key, map[string]any{"channel": ch})
		wantStatus(t, r, 504, api.CodeAMITimeout)
		if _, ok := hangupAttempt(t, e.s, e.slow.ent.ID, r.Header.Get(api.RequestIDHeader)); !ok {
			t.Fatal("timed-out hangup not in hangup_attempts")
		}
	})
}

func testMonitor(t *testing.T, e *env) {
	_, ch := e.placeCall(t, e.a, "160", "+375296254080")
	r := e.s.Do(t, "POST", "/v1/monitor", e.a.supervisor, map[string]any{"mode": "whisper", "target": "160", "from": "161"})
	wantStatus(t, r, 201, "")
	var m struct {
		CallID         string `json:"call_id"`
		TargetChannel  string `json:"target_channel"`
		TargetPrefix   string `json:"target_prefix"`
		ChanSpyOptions string `json:"chanspy_options"`
		PBX            string
	}
	r.JSON(t, &m)
	if m.CallID == "" || m.TargetChannel != ch || m.ChanSpyOptions != "bqw" || m.PBX != e.a.pbx.ID || !strings.HasPrefix(ch, m.TargetPrefix) {
		t.Fatalf("monitor response %s (target leg %s)", r.Body, ch)
	}
	row := auditRow(t, e.s, e.a.ent.ID, r.Header.Get(api.RequestIDHeader))
	if row.Action != api.AuditMonitor || row.Result != store.ResultSuccess || row.FromExt != "161" || row.ToNumber != "160" || row.Channel != ch {
		t.Fatalf("audit row %+v", row)
	}
	for _, tc := range []struct {
		name   string
		token  string
		body   map[string]any
		status int
		code   string
	}{
		{"no live call", e.a.key, map[string]any{"mode": "spy", "target": "170", "from": "161"}, 404, api.CodeNotFound},
		{"bad mode", e.a.key, map[string]any{"mode": "listen", "target": "160", "from": "161"}, 400, api.CodeInvalidRequest},
		{"operator role", e.a.operator, map[string]any{"mode": "spy", "target": "160", "from": "161"}, 403, api.CodeForbidden},
		{"other enterprise", e.b.key, map[string]any{"mode": "spy", "target": "160", "from": "161"}, 404, api.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/monitor", tc.token, tc.body)
			wantStatus(t, r, tc.status, tc.code)
			ent := e.a.ent.ID
			if tc.token == e.b.key {
				ent = e.b.ent.ID
			}
			if row := auditRow(t, e.s, ent, r.Header.Get(api.RequestIDHeader)); row.Result != store.ResultError || row.ErrorCode != tc.code {
				t.Fatalf("audit row %+v", row)
			}
		})
	}
}

// testTenantIsolation: enterprise b's key and JWT can neither see nor touch
// enterprise a's calls, channels or PBX; every attempt is a 404 exactly
// like something that does not exist, and a's call survives.
func testTenantIsolation(t *testing.T, e *env) {
	id, ch := e.placeCall(t, e.a, "180", "+375296254090")
	for _, token := range []string{e.b.key, e.b.supervisor} {
		for _, tc := range []struct {
			name, method, path string
			body               any
		}{
			{"hangup uniqueid on own pbx", "POST", "/v1/calls/hangup", map[string]any{"uniqueid": id}},
			{"hangup channel on own pbx", "POST", "/v1/calls/hangup", map[string]any{"channel": ch}},
			{"hangup naming a's pbx", "POST", "/v1/calls/hangup", map[string]any{"uniqueid": id, "pbx": e.a.pbx.ID}},
			{"delete call", "DELETE", "/v1/calls/" + id, nil},
			{"delete call on a's pbx", "DELETE", "/v1/calls/" + id + "?pbx=" + e.a.pbx.ID, nil},
			{"originate on a's pbx", "POST", "/v1/calls", map[string]any{"from": "150", "to": "151", "pbx": e.a.pbx.ID}},
			{"monitor on a's pbx", "POST", "/v1/monitor", map[string]any{"mode": "spy", "target": "180", "from": "181", "pbx": e.a.pbx.ID}},
			{"a's pbx", "GET", "/v1/pbxs/" + e.a.pbx.ID, nil},
			{"a's channels", "GET", "/v1/channels?pbx=" + e.a.pbx.ID, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.s.Do(t, tc.method, tc.path, token, tc.body)
				wantStatus(t, r, 404, api.CodeNotFound)
				if strings.Contains(string(r.Body), "enterprise") {
					t.Errorf("404 hints at another enterprise: %s", r.Body)
				}
			})
		}
	}
	// An id that never existed answers the same words.
	ghost := e.s.Do(t, "GET", "/v1/pbxs/agt_doesnotexist", e.b.key, nil)
	real := e.s.Do(t, "GET", "/v1/pbxs/"+e.a.pbx.ID, e.b.key, nil)
	if strings.ReplaceAll(string(ghost.Body), "agt_doesnotexist", "X") != strings.ReplaceAll(string(real.Body), e.a.pbx.ID, "X") {
		t.Errorf("another enterprise's PBX and a missing one answer differently:\n%s\n%s", ghost.Body, real.Body)
	}
	var list struct {
		Channels []struct {
			UniqueID string `json:"uniqueid"`
		}
	}
	e.s.Do(t, "GET", "/v1/channels", e.b.key, nil).JSON(t, &list)
	for _, c := range list.Channels {
		if c.UniqueID == id {
			t.Fatal("enterprise b sees enterprise a's channel")
		}
	}
	waitChannel(t, e.s, e.a.pbx.ID, id) // still up
	r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"uniqueid": id})
	wantStatus(t, r, 200, "")
}

// TestLimits covers the rate limit, the agent's originate cap and hidden
// channel names on a control plane with tiny limits.
func TestLimits(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		s, tn := auxEnv(t, engine)
		t.Run("originate cap", func(t *testing.T) {
			tn.pbx.AMI.SetActionDelay("Originate", 500*time.Millisecond)
			defer tn.pbx.AMI.SetActionDelay("Originate", 0)
			key := s.APIKey(t, "0367")
			done := make(chan int, 1)
			go func() {
				r, _ := s.DoErr("POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151"})
				done <- r.Status
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := tn.pbx.AMI.WaitAction(ctx, "Originate")
			must(t, err)
			r := s.Do(t, "POST", "/v1/calls", s.APIKey(t, "0367"), map[string]any{"from": "152", "to": "153"})
			wantStatus(t, r, 429, api.CodePBXBusy)
			if r.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
			}
			if st := <-done; st != 201 {
				t.Fatalf("first originate: %d", st)
			}
		})
		t.Run("rate limit", func(t *testing.T) {
			key := s.APIKey(t, "0367")
			for range 3 {
				wantStatus(t, s.Do(t, "GET", "/v1/pbxs", key, nil), 200, "")
			}
			r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151"})
			wantStatus(t, r, 429, api.CodeRateLimited)
			if ra := r.Header.Get("Retry-After"); ra != "1" {
				t.Errorf("Retry-After %q, want 1", ra)
			}
			row := auditRow(t, s, tn.ent.ID, r.Header.Get(api.RequestIDHeader))
			if row.ErrorCode != api.CodeRateLimited || row.Result != store.ResultError {
				t.Fatalf("audit row %+v", row)
			}
			// Another credential of the enterprise has its own bucket.
			wantStatus(t, s.Do(t, "GET", "/v1/pbxs", s.APIKey(t, "0367"), nil), 200, "")
			// Legacy routes answer in their own words.
			lr := s.Do(t, "GET", "/api/makecallexternal?code=150&phone=151", key, nil)
			if lr.Status != 429 || !strings.HasPrefix(string(lr.Body), `{"detail":"`) || lr.Header.Get("Retry-After") == "" {
				t.Fatalf("legacy 429: %d %s", lr.Status, lr.Body)
			}
		})
		t.Run("hidden channel names", func(t *testing.T) {
			key := s.APIKey(t, "0367")
			r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151"})
			wantStatus(t, r, 201, "")
			id := jsonField(t, r.Body, "call_id")
			waitChannel(t, s, tn.pbx.ID, id)
			r = s.Do(t, "POST", "/api/v2/asterisk/call/hangup", tn.supervisor, map[string]any{"uniqueid": id})
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			golden(t, "legacy_hangup_hidden.json", normalize(t, []byte(strings.ReplaceAll(string(r.Body), id, "CALLID"))))
		})
	})
}
