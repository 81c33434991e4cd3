package controlplane_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// waitUntil polls cond until it holds or d has passed, and says how long
// it took.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// counts are what /readyz, /api/status (platform admin) and /v1/fleet
// say about connected PBXs.
type counts struct{ ready, statusConnected, statusTotal, fleetConnected, fleetAgents int }

func agentCounts(t *testing.T, s *systemtest.Server, admin string) counts {
	t.Helper()
	var c counts
	var ready struct {
		AgentsConnected int `json:"agents_connected"`
	}
	s.Do(t, "GET", "/readyz", "", nil).JSON(t, &ready)
	var status struct {
		Agents struct{ Connected, Total int } `json:"agents"`
	}
	s.Do(t, "GET", "/api/status", admin, nil).JSON(t, &status)
	var fleet struct {
		Totals struct{ Agents, Connected int } `json:"totals"`
	}
	s.Do(t, "GET", "/v1/fleet", admin, nil).JSON(t, &fleet)
	c.ready, c.statusConnected, c.statusTotal = ready.AgentsConnected, status.Agents.Connected, status.Agents.Total
	c.fleetConnected, c.fleetAgents = fleet.Totals.Connected, fleet.Totals.Agents
	return c
}

// TestRevokedAgentLosesItsTunnel: `switchboard agent revoke` writes the
// store from another process. A connected agent then loses its tunnel
// within the key cache TTL, and no count shows it connected any more.
func TestRevokedAgentLosesItsTunnel(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	revoked := s.AddPBX(t, "0367")
	s.AddPBX(t, "0367")
	admin := s.JWT(t, "", "root", auth.RolePlatformAdmin)
	if c := agentCounts(t, s, admin); c != (counts{2, 2, 2, 2, 2}) {
		t.Fatalf("before: %+v", c)
	}

	if err := s.Store().RevokeAgent(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	took := waitUntil(t, api.DefaultKeyCacheTTL, "revoked agent's tunnel closed", func() bool {
		_, ok := s.CP().Registry().Get(revoked.ID)
		return !ok
	})
	t.Logf("tunnel closed %v after the revocation", took)
	// Its redials are refused, so it stays off.
	time.Sleep(300 * time.Millisecond)
	if _, ok := s.CP().Registry().Get(revoked.ID); ok {
		t.Fatal("revoked agent connected again")
	}
	// Every count agrees: one connected of one (the fleet's list of
	// agents is cached up to --pbx-cache-ttl).
	waitUntil(t, api.DefaultPBXCacheTTL+time.Second, "counts agree", func() bool {
		return agentCounts(t, s, admin) == counts{1, 1, 1, 1, 1}
	})
	if got := s.Metric(t, `switchboard_revocations_enforced_total{what="agent_tunnel"}`); got != 1 {
		t.Fatalf("switchboard_revocations_enforced_total{agent_tunnel} = %v, want 1", got)
	}
}

// TestRevokedAgentEventsNotStored: a revoked agent's events are not
// stored, even when its tunnel is still open (the revocation check has not
// run yet: here it runs every 30 s); the refused batch ends its session.
func TestRevokedAgentEventsNotStored(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{KeyCacheTTL: time.Minute}}})
	e := s.Enterprise(t, "0367", "june")
	p := s.AddPBX(t, "0367")
	ctx := context.Background()
	if _, err := p.AMI.StartCall("+375296254070", "150"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "events of the call before the revocation stored", func() bool {
		evs, err := s.Store().ListEvents(ctx, store.EventFilter{EnterpriseID: e.ID, AgentID: p.ID})
		return err == nil && len(evs) > 0
	})
	if err := s.Store().RevokeAgent(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	// Stored before the revocation committed (maybe after its revoked_at
	// was taken: the writes queue behind one another).
	before, err := s.Store().ListEvents(ctx, store.EventFilter{EnterpriseID: e.ID, AgentID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The call goes on on the PBX; its events reach the open tunnel.
	for _, ch := range p.AMI.Channels() {
		_ = p.AMI.Hangup(ch.Uniqueid, 16)
	}
	waitUntil(t, 10*time.Second, "revoked agent's tunnel closed by its refused batch", func() bool {
		_, ok := s.CP().Registry().Get(p.ID)
		return !ok
	})
	evs, err := s.Store().ListEvents(ctx, store.EventFilter{EnterpriseID: e.ID, AgentID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[len(before):] {
		t.Errorf("event %d (%s) stored after the revocation", ev.Seq, ev.Event.Type)
	}
	for _, ev := range evs {
		if ev.Event.Type == protocol.EventCallEnded {
			t.Errorf("the call's end, which came after the revocation, was stored")
		}
	}
}
