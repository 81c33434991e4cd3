package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestRevokedSince: a running control plane learns of revocations written
// by another process from RevokedSince; only those at or after the point
// it asks from are listed.
func TestRevokedSince(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		_, err := s.CreateEnterprise(ctx, "0367", "Acme")
		mustNil(t, err)
		oldAgent, _, err := s.CreateAgent(ctx, "0367", "old", "")
		mustNil(t, err)
		agent, _, err := s.CreateAgent(ctx, "0367", "pbx", "")
		mustNil(t, err)
		live, _, err := s.CreateAgent(ctx, "0367", "live", "")
		mustNil(t, err)
		key, _, err := s.CreateAPIKey(ctx, "0367", "crm", []string{store.ScopeEventsRead})
		mustNil(t, err)
		mustNil(t, s.RevokeAgent(ctx, oldAgent.ID))

		clk.Advance(time.Minute)
		since := clk.Now()
		mustNil(t, s.RevokeAgent(ctx, agent.ID))
		mustNil(t, s.RevokeAPIKey(ctx, key.ID))

		got, err := s.RevokedSince(ctx, since)
		mustNil(t, err)
		if !slices.Equal(got.Agents, []string{agent.ID}) || !slices.Equal(got.APIKeys, []string{key.ID}) {
			t.Fatalf("RevokedSince = %+v, want agent %s and key %s only (not %s revoked before, nor %s live)",
				got, agent.ID, key.ID, oldAgent.ID, live.ID)
		}
		got, err = s.RevokedSince(ctx, since.Add(time.Second))
		mustNil(t, err)
		if len(got.Agents)+len(got.APIKeys) != 0 {
			t.Fatalf("RevokedSince(later) = %+v, want none", got)
		}
	})
}

// TestRevokedAgentEventsRefused: once an agent is revoked, a batch from a
// tunnel that is still open is refused whole and nothing is stored or
// acknowledged.
func TestRevokedAgentEventsRefused(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e, err := s.CreateEnterprise(ctx, "0367", "Acme")
		mustNil(t, err)
		a, _, err := s.CreateAgent(ctx, "0367", "pbx", "")
		mustNil(t, err)
		if _, err := s.StoreAgentEvents(ctx, a.ID, e.ID, []protocol.Event{{Seq: 1, Type: protocol.EventCallStarted, CallID: "c1"}}); err != nil {
			t.Fatal(err)
		}
		mustNil(t, s.RevokeAgent(ctx, a.ID))
		_, err = s.StoreAgentEvents(ctx, a.ID, e.ID, []protocol.Event{{Seq: 2, Type: protocol.EventCallEnded, CallID: "c1"}})
		if !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("StoreAgentEvents after revocation: %v, want ErrRevoked", err)
		}
		evs, err := s.ListEvents(ctx, store.EventFilter{EnterpriseID: e.ID})
		mustNil(t, err)
		if len(evs) != 1 || evs[0].Event.Seq != 1 {
			t.Fatalf("stored events %+v, want only the one before the revocation", evs)
		}
		if acked, err := s.AgentAckedSeq(ctx, a.ID); err != nil || acked != 1 {
			t.Fatalf("acked seq %d, %v; want 1", acked, err)
		}
	})
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
