package api_test

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"golang.org/x/time/rate"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// tenant is one enterprise of the fixture with its credentials.
type tenant struct {
	number, name string
	ent          store.Enterprise
	key          string // every scope
	readKey      string // channels:read only
	supervisor   string // JWT, role supervisor
	operator     string // JWT, role operator
	pbx          *systemtest.PBX
}

// env is one control plane with the fixture every test shares:
//
//	a  0367 "june"   one PBX (hostname pbx-june)
//	b  0420 "acme"   one PBX
//	m  0500 "multi"  two PBXs (pbx required)
//	o  0600 "gone"   one PBX, stopped: offline
//	t  0700 "slow"   one PBX whose Originate and Hangup answer after 2 s
//
// with an AMI timeout of 1 s and terminated_at in +03:30.
type env struct {
	s          *systemtest.Server
	logs       *testio.Buffer
	a, b, m    *tenant
	o, slow    *tenant
	m2         *systemtest.PBX
	platform   string // JWT platform_admin without enterprise
	amiTimeout time.Duration
}

var tehran = time.FixedZone("+0330", 3*3600+1800)

func newEnv(t *testing.T, engine string) *env {
	t.Helper()
	logs := &testio.Buffer{}
	e := &env{logs: logs, amiTimeout: time.Second}
	e.s = systemtest.New(t, systemtest.Options{
		Engine: engine,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Config: controlplane.Config{API: api.Config{AMITimeout: e.amiTimeout, Location: tehran}},
	})
	mk := func(number, name string) *tenant {
		tn := &tenant{number: number, name: name}
		tn.ent = e.s.Enterprise(t, number, name)
		tn.key = e.s.APIKey(t, number)
		tn.readKey = e.s.APIKey(t, number, auth.ScopeChannelsRead)
		tn.supervisor = e.s.JWT(t, number, "sup-"+number, auth.RoleSupervisor)
		tn.operator = e.s.JWT(t, number, "op-"+number, auth.RoleOperator)
		return tn
	}
	e.a, e.b, e.m, e.o, e.slow = mk("0367", "june"), mk("0420", "acme"), mk("0500", "multi"), mk("0600", "gone"), mk("0700", "slow")
	e.a.pbx = e.s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "june-main", Hostname: "pbx-june"})
	e.b.pbx = e.s.AddPBX(t, "0420", systemtest.PBXOptions{Name: "acme-main"})
	e.m.pbx = e.s.AddPBX(t, "0500", systemtest.PBXOptions{Name: "multi-1"})
	e.m2 = e.s.AddPBX(t, "0500", systemtest.PBXOptions{Name: "multi-2"})
	e.o.pbx = e.s.AddPBX(t, "0600", systemtest.PBXOptions{Name: "gone-main"})
	e.o.pbx.Stop()
	e.slow.pbx = e.s.AddPBX(t, "0700", systemtest.PBXOptions{Name: "slow-main"})
	e.slow.pbx.AMI.SetActionDelay("Originate", 2*time.Second)
	e.slow.pbx.AMI.SetActionDelay("Hangup", 2*time.Second)
	e.platform = e.s.JWT(t, "", "root", auth.RolePlatformAdmin)
	return e
}

// auxEnv is a second control plane with tiny limits: 1 request/s burst 3
// per credential, an agent that sets up one call at a time, hidden
// channel names.
func auxEnv(t *testing.T, engine string) (*systemtest.Server, *tenant) {
	t.Helper()
	s := systemtest.New(t, systemtest.Options{
		Engine: engine,
		Config: controlplane.Config{API: api.Config{
			RateLimit:        ratelimit.Config{PerCredential: rate.Limit(1), CredentialBurst: 3},
			HideChannelNames: true,
			Location:         tehran,
		}},
	})
	tn := &tenant{number: "0367", name: "june"}
	tn.ent = s.Enterprise(t, "0367", "june")
	tn.key = s.APIKey(t, "0367")
	tn.supervisor = s.JWT(t, "0367", "sup", auth.RoleSupervisor)
	tn.pbx = s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "aux", MaxConcurrentOriginates: 1})
	return s, tn
}

// forEachEngine runs fn once per engine, the engines in parallel (each
// has its own control plane).
func forEachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fn(t, engine)
		})
	}
}

// errCode returns the v1 error code of a response ("" if none).
func errCode(t *testing.T, r systemtest.Response) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	r.JSON(t, &body)
	return body.Error.Code
}

func wantStatus(t *testing.T, r systemtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if code != "" {
		if got := errCode(t, r); got != code {
			t.Fatalf("error code %q, want %q; body %s", got, code, r.Body)
		}
	}
}

// placeCall originates from → to on the tenant's PBX and waits until its
// first leg is in the live channel table; it returns the call id and the
// first leg's channel name.
func (e *env) placeCall(t *testing.T, tn *tenant, from, to string) (callID, channel string) {
	t.Helper()
	r := e.s.Do(t, "POST", "/v1/calls", tn.key, map[string]any{"from": from, "to": to})
	wantStatus(t, r, 201, "")
	var call struct {
		CallID string `json:"call_id"`
	}
	r.JSON(t, &call)
	return call.CallID, waitChannel(t, e.s, tn.pbx.ID, call.CallID)
}

func waitChannel(t *testing.T, s *systemtest.Server, pbxID, uniqueid string) string {
	t.Helper()
	return s.WaitChannel(t, pbxID, uniqueid).Channel
}

// auditRow returns the audit row of request id rid in the enterprise. The
// row is stored just after the reply, so it is polled for.
func auditRow(t *testing.T, s *systemtest.Server, enterpriseID int64, rid string) store.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows, _, err := s.Store().ListAudit(context.Background(), enterpriseID, "", store.MaxAuditPageSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.RequestID == rid {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit row with request id %s in enterprise %d", rid, enterpriseID)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hangupAttempt returns the hangup attempt of request id rid. It waits
// for the request's audit row first: the attempt is written before it.
func hangupAttempt(t *testing.T, s *systemtest.Server, enterpriseID int64, rid string) (store.HangupAttempt, bool) {
	t.Helper()
	auditRow(t, s, enterpriseID, rid)
	rows, err := s.Store().ListHangupAttempts(context.Background(), enterpriseID, store.MaxAuditPageSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.RequestID == rid {
			return r, true
		}
	}
	return store.HangupAttempt{}, false
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden\n got: %s\nwant: %s", name, got, want)
	}
}

var (
	responseTimeRe = regexp.MustCompile(`"response_time_ms":(\d+\.\d{1,2})`)
	portRe         = regexp.MustCompile(`"port":\d+`)
	terminatedRe   = regexp.MustCompile(`"terminated_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:30"`)
)

// normalize replaces the values that change from run to run, after
// checking their format.
func normalize(t *testing.T, b []byte) []byte {
	t.Helper()
	if bytes.Contains(b, []byte(`"response_time_ms"`)) && !responseTimeRe.Match(b) {
		t.Errorf("response_time_ms is not a Python float with at most 2 decimals: %s", b)
	}
	if bytes.Contains(b, []byte(`"terminated_at"`)) && !terminatedRe.Match(b) {
		t.Errorf("terminated_at is not ISO 8601 seconds with +03:30: %s", b)
	}
	b = responseTimeRe.ReplaceAll(b, []byte(`"response_time_ms":12.34`))
	b = portRe.ReplaceAll(b, []byte(`"port":8080`))
	b = terminatedRe.ReplaceAll(b, []byte(`"terminated_at":"2025-11-23T14:42:58+03:30"`))
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
