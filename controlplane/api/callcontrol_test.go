package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet/fleettest"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// ccEnv is the whole system with one PBX whose fake Asterisk forms an
// attended transfer's consultation at once.
type ccEnv struct {
	s                  *systemtest.Server
	pbx                *systemtest.PBX
	key, operator, sup string
	noControl          string // an API key without calls:control
}

func newCCEnv(t *testing.T) *ccEnv {
	t.Helper()
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	return &ccEnv{
		s:         s,
		pbx:       s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "june-main", AMI: []amitest.Option{amitest.WithTransferDigitTimeout(30 * time.Millisecond)}}),
		key:       s.APIKey(t, "0367"),
		operator:  s.JWT(t, "0367", "op-17", auth.RoleOperator),
		sup:       s.JWT(t, "0367", "sup-1", auth.RoleSupervisor),
		noControl: s.APIKey(t, "0367", auth.ScopeOriginate, auth.ScopeEventsRead, auth.ScopeChannelsRead, auth.ScopeQueuesRead),
	}
}

// dialoutCall is a call with transfer features (Dial tT), placed as the
// captures' CLI did; it waits until the agent has both legs bridged.
func (e *ccEnv) dialoutCall(t *testing.T) string {
	t.Helper()
	id, err := e.pbx.AMI.StartDialoutCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	e.waitBridged(t, id)
	return id
}

func (e *ccEnv) waitBridged(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var v struct {
			Channels []protocol.Channel `json:"channels"`
		}
		e.s.Do(t, "GET", "/v1/channels", e.key, nil).JSON(t, &v)
		n := 0
		for _, ch := range v.Channels {
			if ch.LinkedID == id && ch.BridgeID != "" {
				n++
			}
		}
		if n >= 2 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("call %s never bridged in the agent's table", id)
}

func want(t *testing.T, r systemtest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && !strings.Contains(string(r.Body), `"code":"`+code+`"`)) {
		t.Fatalf("status %d %s, want %d %s", r.Status, r.Body, status, code)
	}
}

// events returns the call's stored events of the given types, waiting
// until n are there.
func (e *ccEnv) events(t *testing.T, id string, n int, types ...string) []protocol.Event {
	t.Helper()
	var got []protocol.Event
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var d struct {
			Events []protocol.Event `json:"events"`
		}
		r := e.s.Do(t, "GET", "/v1/calls/"+id, e.key, nil)
		got = nil
		if r.Status == http.StatusOK {
			r.JSON(t, &d)
			for _, ev := range d.Events {
				if slices.Contains(types, ev.Type) {
					got = append(got, ev)
				}
			}
			if len(got) >= n {
				return got
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("call %s: %d of %d events %v", id, len(got), n, types)
	return nil
}

// TestCallControlAPI drives every call-control route through the whole
// system (API, tunnel, agent, fake Asterisk) and checks the effect in the
// fake, the events, and the audit rows.
func TestCallControlAPI(t *testing.T) {
	e := newCCEnv(t)

	t.Run("blind transfer", func(t *testing.T) {
		id := e.dialoutCall(t)
		r := e.s.Do(t, "POST", "/v1/calls/"+id+"/transfer", e.operator, map[string]any{"to": "160", "mode": "blind", "transferer": "150"})
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"transferer":"150"`) || !strings.Contains(string(r.Body), `"status":"transferred"`) {
			t.Fatalf("transfer answered %s", r.Body)
		}
		evs := e.events(t, id, 2, protocol.EventCallTransferStarted, protocol.EventCallTransferred)
		if x := evs[1].Transfer; x == nil || x.To != "160" || x.By != "op-17" || x.Mode != "blind" {
			t.Fatalf("call.transferred %+v", evs[1].Transfer)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		id := e.dialoutCall(t)
		for _, tc := range []struct {
			name, path, token string
			body              any
			status            int
			code              string
		}{
			{"target not in the dialplan", "/transfer", e.key, map[string]any{"to": "*99", "mode": "blind"}, 400, "invalid_request"},
			{"bad mode", "/transfer", e.key, map[string]any{"to": "160", "mode": "warm"}, 400, "invalid_request"},
			{"no calls:control scope", "/transfer", e.noControl, map[string]any{"to": "160", "mode": "blind"}, 403, "forbidden"},
			{"cancel with none in progress", "/transfer/cancel", e.key, map[string]any{"transferer": "150"}, 409, "call_state"},
			{"bad digits", "/dtmf", e.key, map[string]any{"digits": "12x", "party": "150"}, 400, "invalid_request"},
			{"mute upper case", "/mute", e.key, map[string]any{"party": "150", "direction": "IN", "muted": true}, 400, "invalid_request"},
			{"mute without muted", "/mute", e.key, map[string]any{"party": "150", "direction": "in"}, 400, "invalid_request"},
			{"unknown lot", "/park", e.key, map[string]any{"lot": "nosuchlot"}, 400, "invalid_request"},
			// An optional body is still exactly one object, within MaxBodyBytes.
			{"park two objects", "/park", e.key, `{}{}`, 400, "invalid_request"},
			{"park padded past the body limit", "/park", e.key, `{}` + strings.Repeat(" ", api.DefaultMaxBodyBytes), 413, "body_too_large"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want(t, e.s.Do(t, "POST", "/v1/calls/"+id+tc.path, tc.token, tc.body), tc.status, tc.code)
			})
		}
		want(t, e.s.Do(t, "POST", "/v1/calls/1.999/transfer", e.key, map[string]any{"to": "160", "mode": "blind", "transferer": "150"}), 404, "not_found")
		// A call the history does not know and the API did not place has
		// no default transferer.
		want(t, e.s.Do(t, "POST", "/v1/calls/1.999/transfer/cancel", e.key, nil), 400, "invalid_request")
		want(t, e.s.Do(t, "POST", "/v1/calls/1.999/transfer/cancel", e.key, map[string]any{"pbx": e.pbx.ID}), 400, "invalid_request")
		for _, a := range []string{"BlindTransfer", "Atxfer", "CancelAtxfer", "Park", "MuteAudio", "PlayDTMF"} {
			for _, m := range e.pbx.AMI.Actions() {
				if m.Action() == a && strings.Contains(m.Get("Channel"), id) {
					t.Errorf("%s sent for a refused request", a)
				}
			}
		}
	})

	t.Run("attended transfer", func(t *testing.T) {
		id := e.dialoutCall(t)
		r := e.s.Do(t, "POST", "/v1/calls/"+id+"/transfer", e.sup, map[string]any{"to": "161", "mode": "attended", "transferer": "150"})
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"status":"consulting"`) {
			t.Fatalf("attended answered %s", r.Body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r = e.s.Do(t, "POST", "/v1/calls/"+id+"/transfer/complete", e.sup, map[string]any{"transferer": "150"})
			if r.Status != http.StatusConflict || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // consultation not connected yet
		}
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"status":"transferred"`) || !strings.Contains(string(r.Body), `"to":"161"`) {
			t.Fatalf("complete answered %s", r.Body)
		}
		evs := e.events(t, id, 2, protocol.EventCallTransferStarted, protocol.EventCallTransferred)
		if x := evs[len(evs)-1].Transfer; x == nil || x.Mode != "attended" || x.To != "161" || x.By != "sup-1" || !strings.HasPrefix(x.TargetChannel, "Local/161@") {
			t.Fatalf("call.transferred %+v", x)
		}
	})

	t.Run("attended transfer without transfer features", func(t *testing.T) {
		var res struct {
			CallID string `json:"call_id"`
		}
		e.s.Do(t, "POST", "/v1/calls", e.key, map[string]any{"from": "150", "to": "+375296254071"}).JSON(t, &res)
		e.waitBridged(t, res.CallID)
		r := e.s.Do(t, "POST", "/v1/calls/"+res.CallID+"/transfer", e.key, map[string]any{"to": "160", "mode": "attended"})
		want(t, r, http.StatusConflict, "feature_missing")
		if !strings.Contains(string(r.Body), "option T") {
			t.Errorf("the error does not say what the PBX needs: %s", r.Body)
		}
	})

	t.Run("park, parked, pickup", func(t *testing.T) {
		var res struct {
			CallID string `json:"call_id"`
		}
		e.s.Do(t, "POST", "/v1/calls", e.key, map[string]any{"from": "151", "to": "+375296254072"}).JSON(t, &res)
		e.waitBridged(t, res.CallID)
		r := e.s.Do(t, "POST", "/v1/calls/"+res.CallID+"/park", e.operator, map[string]any{"lot": "operators", "timeout_s": 60})
		want(t, r, http.StatusOK, "")
		var park struct {
			Lot, Space, Parker string
		}
		r.JSON(t, &park)
		if park.Lot != "operators" || park.Space != "901" || park.Parker != "151" {
			t.Fatalf("park answered %s", r.Body)
		}
		var list struct {
			Parked []struct {
				PBX, Lot, Space string
				CallID          string `json:"call_id"`
			} `json:"parked"`
		}
		e.s.Do(t, "GET", "/v1/parked", e.operator, nil).JSON(t, &list)
		if len(list.Parked) != 1 || list.Parked[0].CallID != res.CallID || list.Parked[0].PBX != e.pbx.ID {
			t.Fatalf("GET /v1/parked: %+v", list)
		}
		r = e.s.Do(t, "POST", "/v1/parked/operators/901/pickup", e.operator, map[string]any{"to": "160"})
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"status":"picked_up"`) {
			t.Fatalf("pickup answered %s", r.Body)
		}
		evs := e.events(t, res.CallID, 2, protocol.EventCallParked, protocol.EventCallUnparked)
		if p := evs[1].Park; p == nil || p.RetrievedBy != "160" || p.By != "op-17" {
			t.Fatalf("call.unparked %+v", evs[1].Park)
		}
		e.s.Do(t, "GET", "/v1/parked", e.operator, nil).JSON(t, &list)
		if len(list.Parked) != 0 {
			t.Fatalf("still parked: %+v", list)
		}
	})

	t.Run("dtmf and mute", func(t *testing.T) {
		id := e.dialoutCall(t)
		r := e.s.Do(t, "POST", "/v1/calls/"+id+"/dtmf", e.operator, map[string]any{"digits": "12#", "duration_ms": 60, "party": "+375296254070"})
		want(t, r, http.StatusOK, "")
		r = e.s.Do(t, "POST", "/v1/calls/"+id+"/mute", e.operator, map[string]any{"party": "150", "direction": "in", "muted": true})
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.Body), `"muted":true`) {
			t.Fatalf("mute answered %s", r.Body)
		}
	})

	t.Run("audit", func(t *testing.T) {
		var page struct {
			Entries []struct {
				Action, Result, ActorID string
				ErrorCode               string `json:"error_code"`
			} `json:"entries"`
		}
		wanted := []string{
			api.AuditTransfer + " success", api.AuditTransfer + " error", api.AuditTransferComplete + " success",
			api.AuditTransferCancel + " error", api.AuditPark + " success", api.AuditPickup + " success",
			api.AuditDTMF + " success", api.AuditMute + " success", api.AuditMute + " error",
		}
		deadline := time.Now().Add(5 * time.Second)
		seen := map[string]bool{}
		for time.Now().Before(deadline) {
			e.s.Do(t, "GET", "/v1/audit?limit=500", e.key, nil).JSON(t, &page)
			for _, en := range page.Entries {
				seen[en.Action+" "+en.Result] = true
			}
			if !slices.ContainsFunc(wanted, func(w string) bool { return !seen[w] }) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, w := range wanted {
			if !seen[w] {
				t.Errorf("no audit row %q in %v", w, seen)
			}
		}
	})
}

// TestCallControlAgentTooOld: an agent of protocol 2 is asked for none of
// the call-control operations: each answers 409 agent_too_old, its tunnel
// stays up, and its agent receives nothing but what it knows.
func TestCallControlAgentTooOld(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx := context.Background()
	if _, err := st.CreateEnterprise(ctx, "0367", "june"); err != nil {
		t.Fatal(err)
	}
	ag, _, err := st.CreateAgent(ctx, "0367", "pbx-v2", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := st.CreateAPIKey(ctx, "0367", "test", auth.Scopes)
	if err != nil {
		t.Fatal(err)
	}
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	var mu sync.Mutex
	var received []string
	srv.Connect(t, ag.ID, func(ctx context.Context, req protocol.Request) (any, error) {
		mu.Lock()
		received = append(received, req.Op)
		mu.Unlock()
		return protocol.PingResult{AMIRoundTripMicros: 70}, nil
	}, fleettest.AgentOptions{EnterpriseID: ag.EnterpriseID, Hello: protocol.Hello{Protocol: 2, AgentVersion: "0.2.0", Hostname: "v2", AMI: protocol.AMIUp}})
	h := bareAPI(t, st, reg, api.Config{}).Handler()
	do := func(method, path string, body any) (int, string) {
		var b strings.Builder
		if body != nil {
			_ = json.NewEncoder(&b).Encode(body)
		}
		req := httptest.NewRequest(method, path, strings.NewReader(b.String()))
		req.Header.Set("Authorization", "Bearer "+key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		op, method, path string
		body             any
	}{
		{protocol.OpTransfer, "POST", "/v1/calls/1.1/transfer", map[string]any{"to": "160", "mode": "blind", "transferer": "150"}},
		{protocol.OpTransferComplete, "POST", "/v1/calls/1.1/transfer/complete", map[string]any{"transferer": "150"}},
		{protocol.OpTransferCancel, "POST", "/v1/calls/1.1/transfer/cancel", map[string]any{"transferer": "150"}},
		{protocol.OpDTMF, "POST", "/v1/calls/1.1/dtmf", map[string]any{"digits": "1", "party": "150"}},
		{protocol.OpPark, "POST", "/v1/calls/1.1/park", map[string]any{"parker": "150"}},
		{protocol.OpParked, "GET", "/v1/parked?pbx=" + ag.ID, nil},
		{protocol.OpParkedPickup, "POST", "/v1/parked/default/701/pickup", map[string]any{"to": "160"}},
		{protocol.OpMute, "POST", "/v1/calls/1.1/mute", map[string]any{"party": "150", "direction": "in", "muted": true}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			code, body := do(tc.method, tc.path, tc.body)
			if code != http.StatusConflict || !strings.Contains(body, `"code":"agent_too_old"`) || !strings.Contains(body, "needs protocol 3") {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, code, body)
			}
		})
	}
	// Without ?pbx=, GET /v1/parked reports the old agent as unavailable.
	if code, body := do("GET", "/v1/parked", nil); code != http.StatusOK || !strings.Contains(body, `"code":"agent_too_old"`) {
		t.Fatalf("GET /v1/parked: %d %s", code, body)
	}
	if code, body := do("GET", "/v1/channels", nil); code != http.StatusOK {
		t.Fatalf("the old agent no longer serves what it knows: %d %s", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(received); got != "[channels]" {
		t.Fatalf("the old agent received %s", got)
	}
}

// TestCallControlNewPBX: a call on a PBX registered after the enterprise's
// PBX list was cached (TTL an hour here) is found from its stored record
// without naming the PBX, not reported as an unknown call.
func TestCallControlNewPBX(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{PBXCacheTTL: time.Hour}}})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "june-main"})
	key := s.APIKey(t, "0367")
	want(t, s.Do(t, "GET", "/v1/pbxs", key, nil), http.StatusOK, "") // caches the list of one
	second := s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "june-branch"})
	id, err := second.AMI.StartDialoutCall("150", "+375296254070")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v struct {
			AnsweredAt *time.Time `json:"answered_at"`
		}
		if r := s.Do(t, "GET", "/v1/calls/"+id, key, nil); r.Status == http.StatusOK {
			if r.JSON(t, &v); v.AnsweredAt != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s never answered in the history", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := s.Do(t, "POST", "/v1/calls/"+id+"/mute", key, map[string]any{"party": "150", "direction": "in", "muted": true})
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.Body), `"pbx":"`+second.ID+`"`) {
		t.Fatalf("mute answered %s, want PBX %s", r.Body, second.ID)
	}
}
