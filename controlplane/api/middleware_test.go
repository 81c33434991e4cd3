package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/testio"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func testMiddleware(t *testing.T, e *env) {
	t.Run("request id", func(t *testing.T) {
		for _, tc := range []struct {
			name, sent string
			kept       bool
		}{
			{"sane is echoed", "crm-7f3a.42:b_c", true},
			{"spaces are replaced", "evil id\"", false},
			{"too long is replaced", strings.Repeat("a", 129), false},
			{"none gets one", "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.sent != "" {
					hdr = []string{api.RequestIDHeader, tc.sent}
				}
				r := e.s.Do(t, "GET", "/v1/pbxs", e.a.key, nil, hdr...)
				got := r.Header.Get(api.RequestIDHeader)
				if got == "" || (got == tc.sent) != tc.kept {
					t.Fatalf("sent %q, got %q", tc.sent, got)
				}
				waitLog(t, e, func(l string) bool { return strings.Contains(l, `"request_id":"`+got+`"`) })
			})
		}
		// auth's own refusal line carries the request id too.
		r := e.s.Do(t, "GET", "/v1/pbxs", "sbk_key_aaaaaaaaaaaaaaaa_"+strings.Repeat("c", 52), nil, api.RequestIDHeader, "refused-1")
		wantStatus(t, r, 401, api.CodeUnauthorized)
		waitLog(t, e, func(l string) bool {
			return strings.Contains(l, "credentials refused") && strings.Contains(l, `"request_id":"refused-1"`)
		})
	})
	t.Run("unknown routes", func(t *testing.T) {
		wantStatus(t, e.s.Do(t, "GET", "/v1/nope", e.a.key, nil), 404, api.CodeNotFound)
		r := e.s.Do(t, "PUT", "/v1/calls", e.a.key, nil)
		wantStatus(t, r, 405, api.CodeMethodNotAllowed)
		if r.Header.Get("Allow") == "" {
			t.Error("405 without Allow")
		}
		r = e.s.Do(t, "GET", "/api/nope", "", nil)
		if r.Status != 404 || !strings.HasPrefix(string(r.Body), `{"detail":`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		// Outside /v1 and /api too: the same envelope, not the mux's text.
		wantStatus(t, e.s.Do(t, "GET", "/nope", "", nil), 404, api.CodeNotFound)
	})
	t.Run("openapi served", func(t *testing.T) {
		r := e.s.Do(t, "GET", "/v1/openapi.json", "", nil)
		if r.Status != 200 || !bytes.Equal(r.Body, api.OpenAPI()) || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s", r.Status, r.Header)
		}
	})
}

// panicCaller is a fleet that panics, to prove recovery answers 500 JSON
// and the server keeps serving.
type panicCaller struct{}

func (panicCaller) Call(context.Context, string, string, any, any) error { panic("boom") }
func (panicCaller) Fetch(context.Context, string, string, any, any) (io.ReadCloser, error) {
	panic("boom")
}

func TestPanicRecovery(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx := context.Background()
	if _, err := st.CreateEnterprise(ctx, "0367", "june"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateAgent(ctx, "0367", "pbx", ""); err != nil {
		t.Fatal(err)
	}
	_, key, err := st.CreateAPIKey(ctx, "0367", "k", []string{"originate"})
	if err != nil {
		t.Fatal(err)
	}
	var logs testio.Buffer
	reg := fleet.NewRegistry(nil)
	a := bareAPI(t, st, reg, api.Config{Caller: panicCaller{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	srv := httptest.NewServer(a.Handler())
	for range 2 {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/calls", strings.NewReader(`{"from":"150","to":"151"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error struct{ Code string } }
		if resp.StatusCode != 500 || json.Unmarshal(body, &e) != nil || e.Error.Code != api.CodeInternal {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		row := auditRowStore(t, st, resp.Header.Get(api.RequestIDHeader))
		if row.ErrorCode != api.CodeInternal {
			t.Fatalf("audit row of the panicking request: %+v", row)
		}
	}
	srv.Close() // waits for the handlers, which log after replying
	if !strings.Contains(logs.String(), "panic serving request") || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

func TestConfigValidate(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	st := storetest.OpenSQLite(t)
	for _, tc := range []struct {
		name string
		cfg  api.Config
		want string
	}{
		{"no store", api.Config{Directory: reg, Caller: reg}, "Store is required"},
		{"no events", api.Config{Store: st, Directory: reg, Caller: reg, Agents: noAgents{}}, "Events is required"},
		{"no agent endpoint", api.Config{Store: st, Directory: reg, Caller: reg}, "Agents is required"},
		{"negative timeout", api.Config{Store: st, Directory: reg, Caller: reg, AMITimeout: -1}, "AMITimeout"},
		{"tiny body", api.Config{Store: st, Directory: reg, Caller: reg, MaxBodyBytes: 10}, "MaxBodyBytes"},
		{"huge timeout", api.Config{Store: st, Directory: reg, Caller: reg, AMITimeout: 1 << 40}, "over a minute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func auditRowStore(t *testing.T, st *store.Store, rid string) store.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rows, _, err := st.ListAudit(context.Background(), 0, "", store.MaxAuditPageSize)
		must(t, err)
		for _, r := range rows {
			if r.RequestID == rid {
				return r
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no audit row for %s", rid)
	return store.AuditEntry{}
}

// waitLog waits for a log line matching ok: the access log is written
// after the reply.
func waitLog(t *testing.T, e *env, ok func(line string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if ok(line) {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("no matching log line")
}

// TestReadyzSaysStorageFails: while the store refuses agents' event
// batches (the gateway holds and retries them), /readyz says so.
func TestReadyzSaysStorageFails(t *testing.T) {
	failing := false
	a := bareAPI(t, storetest.OpenSQLite(t), fleet.NewRegistry(nil), api.Config{
		StoreFailing: func() (bool, error) { return failing, errors.New("disk full") },
	})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		failing bool
		code    int
		want    string
	}{{false, 200, `"status":"ready"`}, {true, 503, `the store refuses agents' event batches`}} {
		failing = tc.failing
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) || strings.Contains(string(body), "disk full") {
			t.Fatalf("failing=%v: %d %s", tc.failing, resp.StatusCode, body)
		}
	}
}
