package api_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

func testLegacy(t *testing.T, e *env) {
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	t.Run("makecallexternal", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, token, golden string
			status                    int
		}{
			{"ok", "/api/makecallexternal?" + q("code", "150", "phone", "+375296254070", "clientId", e.a.key), "", "legacy_makecall_ok.json", 200},
			{"ok with bearer", "/api/makecallexternal?" + q("code", "150", "phone", "+375296254070"), e.a.key, "legacy_makecall_ok.json", 200},
			{"bad clientId", "/api/makecallexternal?" + q("code", "150", "phone", "1", "clientId", "sbk_key_aaaaaaaaaaaaaaaa_"+strings.Repeat("b", 52)), "", "legacy_makecall_401.json", 401},
			{"no clientId", "/api/makecallexternal?" + q("code", "150", "phone", "1"), "", "legacy_makecall_401.json", 401},
			{"jwt in clientId", "/api/makecallexternal?" + q("code", "150", "phone", "1", "clientId", e.a.operator), "", "legacy_makecall_401.json", 401},
			{"missing phone", "/api/makecallexternal?" + q("code", "150", "clientId", e.a.key), "", "legacy_makecall_422.json", 422},
			{"pbx offline", "/api/makecallexternal?" + q("code", "150", "phone", "151", "clientId", e.o.key), "", "legacy_makecall_500_offline.json", 500},
			{"scope missing", "/api/makecallexternal?" + q("code", "150", "phone", "151", "clientId", e.a.readKey), "", "legacy_makecall_403.json", 403},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.s.Do(t, "GET", tc.path, tc.token, nil)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
				}
				golden(t, tc.golden, normalize(t, []byte(strings.ReplaceAll(string(r.Body), e.o.pbx.ID, "agt_offline"))))
				if tc.status == 200 {
					row := auditRow(t, e.s, e.a.ent.ID, r.Header.Get(api.RequestIDHeader))
					if row.Action != api.AuditOriginate || row.Result != store.ResultSuccess || row.FromExt != "150" || row.UniqueID == "" {
						t.Fatalf("audit row %+v", row)
					}
				}
			})
		}
	})
	t.Run("clientId never logged", func(t *testing.T) {
		logs := e.logs.String()
		id, _ := auth.ParseAPIKeyID(e.a.key)
		secret := e.a.key[strings.LastIndexByte(e.a.key, '_')+1:]
		if strings.Contains(logs, secret) {
			t.Fatal("an API key's secret reached the logs")
		}
		if !strings.Contains(logs, "clientId="+id) {
			t.Fatal("the access log does not name the key's public id")
		}
		if strings.Contains(logs, e.a.operator) {
			t.Fatal("a JWT reached the logs")
		}
	})
	t.Run("monitor", func(t *testing.T) {
		_, _ = e.placeCall(t, e.a, "200", "+375296254100")
		for _, tc := range []struct {
			name, query, golden string
			status              int
		}{
			{"spy", q("action", "09", "target", "200", "monitor_from", "201", "clientId", e.a.key), "legacy_monitor_09.json", 200},
			{"barge", q("action", "02", "target", "200", "monitor_from", "201", "clientId", e.a.key), "legacy_monitor_02.json", 200},
			{"bad action", q("action", "07", "target", "200", "monitor_from", "201", "clientId", e.a.key), "legacy_monitor_400.json", 400},
			{"no live call", q("action", "09", "target", "299", "monitor_from", "201", "clientId", e.a.key), "legacy_monitor_404.json", 404},
			{"missing", q("clientId", e.a.key), "legacy_monitor_422.json", 422},
			{"bad key", q("action", "09", "target", "200", "monitor_from", "201", "clientId", "nope"), "legacy_makecall_401.json", 401},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.s.Do(t, "GET", "/api/monitor?"+tc.query, "", nil)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
				}
				body := string(r.Body)
				if tc.status == 200 {
					// The live channel's counter varies from run to run.
					target := jsonField(t, r.Body, "target_channel")
					if !strings.HasPrefix(target, "Local/200@inoffice-") {
						t.Fatalf("target_channel %q", target)
					}
					body = strings.ReplaceAll(body, target, "Local/200@inoffice-00000001")
				}
				golden(t, tc.golden, normalize(t, []byte(body)))
			})
		}
		r := e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"all": true})
		wantStatus(t, r, 200, "")
	})
	t.Run("health and status", func(t *testing.T) {
		r := e.s.Do(t, "GET", "/health", "", nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"port":`+e.s.URL[strings.LastIndexByte(e.s.URL, ':')+1:]) {
			t.Fatalf("%d %s (server %s)", r.Status, r.Body, e.s.URL)
		}
		golden(t, "legacy_health.json", normalize(t, r.Body))
		// Without a credential: the shape, and no count of anyone's PBXs.
		r = e.s.Do(t, "GET", "/api/status", "", nil)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		golden(t, "legacy_status.json", r.Body)
		// With one: the enterprise's own (multi: 2 PBXs, both up; gone: 1, down).
		for _, tc := range []struct {
			path, token, want string
		}{
			{"/api/status?clientId=" + url.QueryEscape(e.m.key), "", `"agents":{"connected":2,"total":2}`},
			{"/api/status", e.o.key, `"agents":{"connected":0,"total":1}`},
			{"/api/status", e.platform, `"agents":{"connected":5,"total":6}`},
		} {
			r := e.s.Do(t, "GET", tc.path, tc.token, nil)
			if r.Status != 200 || !strings.Contains(string(r.Body), tc.want) {
				t.Fatalf("%s: %d %s, want %s", tc.path, r.Status, r.Body, tc.want)
			}
		}
		if r := e.s.Do(t, "GET", "/api/status", "sbk_key_aaaaaaaaaaaaaaaa_"+strings.Repeat("c", 52), nil); r.Status != 401 {
			t.Fatalf("bad credential: %d %s", r.Status, r.Body)
		}
	})
}

func testLegacyHangup(t *testing.T, e *env) {
	const path = "/api/v2/asterisk/call/hangup"
	for _, tc := range []struct {
		name   string
		form   bool
		token  string
		body   func(id, ch string) string
		status int
		golden string
	}{
		{"json by uniqueid", false, e.a.supervisor, func(id, _ string) string { return `{"uniqueid":"` + id + `","reason":"abuse","unknown":1}` }, 200, "legacy_hangup_ok.json"},
		{"form by channel", true, e.s.JWT(t, "0367", "boss", auth.RoleTelecomAdmin), func(_, ch string) string { return url.Values{"channel": {ch}, "cause": {"16"}}.Encode() }, 200, "legacy_hangup_ok.json"},
		{"hangup_all", true, e.a.supervisor, func(string, string) string { return "hangup_all=1" }, 200, "legacy_hangup_all.json"},
		// What `curl -d '{…}'` sends: JSON labelled as a form.
		{"json sent as a form", true, e.a.supervisor, func(id, _ string) string { return ` {"uniqueid":"` + id + `","reason":"curl -d"}` }, 200, "legacy_hangup_ok.json"},
		{"nothing named", false, e.a.supervisor, func(string, string) string { return `{"reason":"x"}` }, 400, "legacy_hangup_400.json"},
		{"empty body", false, e.a.supervisor, func(string, string) string { return `` }, 400, "legacy_hangup_400.json"},
		{"no such channel", false, e.a.supervisor, func(string, string) string { return `{"channel":"PJSIP/404-00000001"}` }, 404, "legacy_hangup_404.json"},
		{"operator role", false, e.a.operator, func(id, _ string) string { return `{"uniqueid":"` + id + `"}` }, 403, "legacy_hangup_403.json"},
		{"no credentials", false, "", func(id, _ string) string { return `{"uniqueid":"` + id + `"}` }, 401, "legacy_hangup_401.json"},
		{"other enterprise", false, e.b.supervisor, func(id, _ string) string { return `{"uniqueid":"` + id + `"}` }, 404, "legacy_hangup_404.json"},
		{"offline", false, e.o.supervisor, func(string, string) string { return `{"uniqueid":"1.2"}` }, 503, "legacy_hangup_503.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ch := e.placeCall(t, e.a, "210", "+375296254110")
			ct := "application/json"
			if tc.form {
				ct = "application/x-www-form-urlencoded"
			}
			r := e.s.Do(t, "POST", path, tc.token, tc.body(id, ch), "Content-Type", ct)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			body := string(r.Body)
			if tc.status == 200 && tc.golden == "legacy_hangup_ok.json" {
				// PHP escapes '/' in the channel name.
				esc := strings.ReplaceAll(ch, "/", `\/`)
				if !strings.Contains(body, `"channel":"`+esc+`"`) || !strings.Contains(body, `"uniqueid":"`+id+`"`) {
					t.Fatalf("hangup body %s lacks %s / %s", body, esc, id)
				}
				body = strings.NewReplacer(esc, `Local\/210@inoffice-00000001;1`, id, "CALLID").Replace(body)
			}
			golden(t, tc.golden, normalize(t, []byte(body)))
			if tc.status != 401 {
				ent := e.a.ent.ID
				switch tc.token {
				case e.b.supervisor:
					ent = e.b.ent.ID
				case e.o.supervisor:
					ent = e.o.ent.ID
				}
				row := auditRow(t, e.s, ent, r.Header.Get(api.RequestIDHeader))
				if (row.Result == store.ResultSuccess) != (tc.status == 200) || row.Action != api.AuditHangup {
					t.Fatalf("audit row %+v", row)
				}
				if _, failed := hangupAttempt(t, e.s, ent, r.Header.Get(api.RequestIDHeader)); failed != (tc.status != 200) {
					t.Fatalf("hangup attempt recorded: %v, status %d", failed, tc.status)
				}
			}
			e.s.Do(t, "POST", "/v1/calls/hangup", e.a.key, map[string]any{"all": true})
		})
	}
}
