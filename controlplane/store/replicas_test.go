package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestRegisterReplica(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const dead = time.Minute
		a := store.Replica{ID: "rpl_a", URL: "http://10.0.0.1:8080", Hostname: "cp1", PID: 11, Version: "v1", Clustered: true}
		if err := s.RegisterReplica(ctx, a, dead); err != nil {
			t.Fatalf("register a: %v", err)
		}
		tests := []struct {
			name string
			r    store.Replica
			ok   bool
		}{
			{"unclustered beside a live replica", store.Replica{ID: "rpl_b", URL: "http://10.0.0.2:8080"}, false},
			{"clustered beside a clustered one", store.Replica{ID: "rpl_c", URL: "http://10.0.0.3:8080", Clustered: true}, true},
			{"same URL replaces its predecessor", store.Replica{ID: "rpl_a2", URL: a.URL, Clustered: true}, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := s.RegisterReplica(ctx, tc.r, dead)
				if tc.ok != (err == nil) {
					t.Fatalf("RegisterReplica(%s) = %v, want ok %v", tc.r.ID, err, tc.ok)
				}
				var ce *store.ReplicaConflictError
				if !tc.ok && (!errors.As(err, &ce) || !errors.Is(err, store.ErrReplicaConflict) || ce.Live.ID == "") {
					t.Fatalf("refusal %v does not name the live replica", err)
				}
			})
		}
		live, err := s.LiveReplicas(ctx, dead)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range live {
			ids = append(ids, r.ID)
		}
		if want := []string{"rpl_a2", "rpl_c"}; !slices.Equal(ids, want) {
			t.Fatalf("live replicas = %v, want %v (rpl_a replaced by rpl_a2 on its URL)", ids, want)
		}
		// A clustered replica refuses to join an unclustered one.
		if err := s.DeregisterReplica(ctx, "rpl_a2"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeregisterReplica(ctx, "rpl_c"); err != nil {
			t.Fatal(err)
		}
		if err := s.RegisterReplica(ctx, store.Replica{ID: "rpl_solo"}, dead); err != nil {
			t.Fatalf("alone: %v", err)
		}
		err = s.RegisterReplica(ctx, store.Replica{ID: "rpl_d", URL: "http://10.0.0.4:8080", Clustered: true}, dead)
		var ce *store.ReplicaConflictError
		if !errors.As(err, &ce) || ce.Live.ID != "rpl_solo" || ce.Live.Clustered {
			t.Fatalf("clustered beside an unclustered one: %v", err)
		}
		if err := s.HeartbeatReplica(ctx, "rpl_gone"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("heartbeat of an unknown replica = %v, want ErrNotFound", err)
		}
	})
}

// TestReplicaDeadAfterMissedBeats: a replica that stops beating stops
// counting, and then no longer stops another from starting.
func TestReplicaDeadAfterMissedBeats(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const dead = 300 * time.Millisecond
		if err := s.RegisterReplica(ctx, store.Replica{ID: "rpl_a"}, dead); err != nil {
			t.Fatal(err)
		}
		if err := s.RegisterReplica(ctx, store.Replica{ID: "rpl_b"}, dead); err == nil {
			t.Fatal("second unclustered replica registered beside a live one")
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			live, err := s.LiveReplicas(ctx, dead)
			if err != nil {
				t.Fatal(err)
			}
			if len(live) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica still live %v after it stopped beating", live)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := s.RegisterReplica(ctx, store.Replica{ID: "rpl_b"}, dead); err != nil {
			t.Fatalf("register after the other died: %v", err)
		}
		// Beating keeps it live past deadAfter.
		for range 5 {
			time.Sleep(dead / 3)
			if err := s.HeartbeatReplica(ctx, "rpl_b"); err != nil {
				t.Fatal(err)
			}
		}
		if live, err := s.LiveReplicas(ctx, dead); err != nil || len(live) != 1 {
			t.Fatalf("beating replica: live = %v, %v", live, err)
		}
	})
}

// TestRegisterReplicaRace: of several unclustered replicas starting at
// once, exactly one registers.
func TestRegisterReplicaRace(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.RegisterReplica(ctx, store.Replica{ID: fmt.Sprintf("rpl_%d", i)}, time.Minute) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrReplicaConflict):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d replicas registered, want 1: %v", ok, errs)
		}
	})
}

func TestAgentOwnership(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		since := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		if _, err := s.OwnerOf(ctx, "agt_1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("OwnerOf(never connected) = %v", err)
		}
		g1, err := s.ClaimAgent(ctx, store.Owner{AgentID: "agt_1", ReplicaID: "rpl_a", SessionID: "ses_1", Since: since,
			Hostname: "pbx1", AgentVersion: "1.0", Protocol: 2, AMI: "up"}, "", nil)
		if err != nil || g1 != 1 {
			t.Fatalf("first claim = %d, %v", g1, err)
		}
		// The agent reconnects to replica b while a still holds a session.
		g2, err := s.ClaimAgent(ctx, store.Owner{AgentID: "agt_1", ReplicaID: "rpl_b", SessionID: "ses_2", Since: since.Add(time.Second)}, "", nil)
		if err != nil || g2 != 2 {
			t.Fatalf("second claim = %d, %v", g2, err)
		}
		// a's old session ends: it releases nothing of b's claim, and its
		// status writes do not land.
		if ok, err := s.ReleaseAgent(ctx, "agt_1", g1, "", ""); err != nil || ok {
			t.Fatalf("release of the replaced claim = %v, %v; want false", ok, err)
		}
		at := since.Add(2 * time.Second)
		if err := s.UpdateOwnerStatus(ctx, []store.OwnerStatus{
			{AgentID: "agt_1", Generation: g1, AMI: "down", StatusAt: at},
			{AgentID: "agt_1", Generation: g2, AMI: "up", LiveCalls: 3, LiveChannels: 6, AgentVersion: "1.1", StatusAt: at},
		}); err != nil {
			t.Fatal(err)
		}
		o, err := s.OwnerOf(ctx, "agt_1")
		if err != nil || o.ReplicaID != "rpl_b" || o.Generation != 2 || o.SessionID != "ses_2" || o.AMI != "up" || o.LiveCalls != 3 ||
			o.LiveChannels != 6 || o.AgentVersion != "1.1" || !o.StatusAt.Equal(at) {
			t.Fatalf("owner = %+v, %v", o, err)
		}
		if _, err := s.ClaimAgent(ctx, store.Owner{AgentID: "agt_2", ReplicaID: "rpl_a", SessionID: "ses_3"}, "", nil); err != nil {
			t.Fatal(err)
		}
		held, err := s.HeldAgents(ctx, []string{"rpl_b"})
		if err != nil || len(held) != 1 || held[0].AgentID != "agt_1" {
			t.Fatalf("HeldAgents(b) = %+v, %v", held, err)
		}
		// A replica that deregisters holds nothing; generations stay.
		if err := s.DeregisterReplica(ctx, "rpl_b"); err != nil {
			t.Fatal(err)
		}
		if o, err := s.OwnerOf(ctx, "agt_1"); err != nil || o.ReplicaID != "" || o.Generation != 2 {
			t.Fatalf("after deregister: %+v, %v", o, err)
		}
		if g, err := s.ClaimAgent(ctx, store.Owner{AgentID: "agt_1", ReplicaID: "rpl_a", SessionID: "ses_4"}, "", nil); err != nil || g != 3 {
			t.Fatalf("claim after release = %d, %v; want 3", g, err)
		}
		if ok, err := s.ReleaseAgent(ctx, "agt_1", 3, "", ""); err != nil || !ok {
			t.Fatalf("release of the current claim = %v, %v", ok, err)
		}
	})
}

func TestTickets(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		tk := store.Ticket{ID: "h1", EnterpriseID: 7, CredentialID: "key:k1", Principal: `{"k":1}`, ExpiresAt: clk.Now().Add(time.Minute)}
		if err := s.PutTicket(ctx, tk, 2); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTicket(ctx, store.Ticket{ID: "h2", EnterpriseID: 7, CredentialID: "key:k2", Principal: "p", ExpiresAt: clk.Now().Add(time.Minute)}, 2); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTicket(ctx, store.Ticket{ID: "h3", EnterpriseID: 7, CredentialID: "key:k1", Principal: "p", ExpiresAt: clk.Now().Add(time.Minute)}, 2); !errors.Is(err, store.ErrTooManyTickets) {
			t.Fatalf("third ticket of the enterprise = %v, want ErrTooManyTickets", err)
		}
		got, err := s.TakeTicket(ctx, "h1")
		if err != nil || got.Principal != tk.Principal || got.CredentialID != tk.CredentialID || !got.ExpiresAt.Equal(tk.ExpiresAt) {
			t.Fatalf("TakeTicket = %+v, %v", got, err)
		}
		if _, err := s.TakeTicket(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second take = %v, want ErrNotFound", err)
		}
		if n, err := s.RevokeTickets(ctx, "key:k2"); err != nil || n != 1 {
			t.Fatalf("RevokeTickets = %d, %v", n, err)
		}
		if _, err := s.TakeTicket(ctx, "h2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("take of a revoked ticket = %v", err)
		}
		// Expired tickets stop counting against the bound.
		for _, id := range []string{"h4", "h5"} {
			if err := s.PutTicket(ctx, store.Ticket{ID: id, EnterpriseID: 7, CredentialID: "c", Principal: "p", ExpiresAt: clk.Now().Add(time.Second)}, 2); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(2 * time.Second)
		if err := s.PutTicket(ctx, store.Ticket{ID: "h6", EnterpriseID: 7, CredentialID: "c", Principal: "p", ExpiresAt: clk.Now().Add(time.Second)}, 2); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	})
}

// TestIdempotencyClaim: the key is claimed before the request acts, so of
// requests racing with one key exactly one acts; a failed one gives the
// key back; a claimer that stopped is taken over after its lease.
func TestIdempotencyClaim(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		rec := store.Idempotent{EnterpriseID: e.ID, Key: "k", RequestHash: "h"}

		const n = 8
		tokens := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { tokens[i], _, errs[i] = s.ClaimIdempotent(ctx, rec, time.Minute) })
		}
		wg.Wait()
		winners := 0
		for i := range n {
			switch {
			case tokens[i] != "" && errs[i] == nil:
				winners++
			case !errors.Is(errs[i], store.ErrIdempotencyInFlight):
				t.Errorf("claim %d: %q, %v", i, tokens[i], errs[i])
			}
		}
		if winners != 1 {
			t.Fatalf("%d claims won, want 1", winners)
		}
		// While it runs the key is no result, and a different body can be
		// told apart.
		if _, err := s.GetIdempotent(ctx, e.ID, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetIdempotent of a pending key = %v", err)
		}
		_, cur, err := s.ClaimIdempotent(ctx, store.Idempotent{EnterpriseID: e.ID, Key: "k", RequestHash: "other"}, time.Minute)
		if !errors.Is(err, store.ErrIdempotencyInFlight) || cur.Matches("other") || !cur.Matches("h") {
			t.Fatalf("claim with another body = %+v, %v", cur, err)
		}

		// The request failed: the key is free again.
		var winner string
		for _, tok := range tokens {
			if tok != "" {
				winner = tok
			}
		}
		if err := s.ReleaseIdempotent(ctx, e.ID, "k", winner); err != nil {
			t.Fatal(err)
		}
		tok, _, err := s.ClaimIdempotent(ctx, rec, time.Minute)
		if err != nil || tok == "" {
			t.Fatalf("claim after release = %q, %v", tok, err)
		}
		// Its claimer stops; after the lease the key is taken over, and the
		// stale claimer can no longer release it.
		clk.Advance(2 * time.Minute)
		tok2, _, err := s.ClaimIdempotent(ctx, rec, time.Minute)
		if err != nil || tok2 == "" || tok2 == tok {
			t.Fatalf("take over after the lease = %q, %v", tok2, err)
		}
		if err := s.ReleaseIdempotent(ctx, e.ID, "k", tok); err != nil {
			t.Fatal(err)
		}
		// The result is stored; every later claim replays it.
		done := store.Idempotent{EnterpriseID: e.ID, Key: "k", RequestHash: "h", StatusCode: 201, Body: []byte(`{"call_id":"1.1"}`)}
		if got, err := s.PutIdempotent(ctx, done); err != nil || got.StatusCode != 201 {
			t.Fatalf("PutIdempotent completing the claim = %+v, %v", got, err)
		}
		tok3, stored, err := s.ClaimIdempotent(ctx, rec, time.Minute)
		if err != nil || tok3 != "" || stored.StatusCode != 201 || string(stored.Body) != string(done.Body) || !stored.Matches("h") {
			t.Fatalf("claim of a stored key = %q, %+v, %v", tok3, stored, err)
		}
		if got, err := s.GetIdempotent(ctx, e.ID, "k"); err != nil || got.StatusCode != 201 {
			t.Fatalf("GetIdempotent after completion = %+v, %v", got, err)
		}
	})
}

// TestClaimAgentsBatch: many claims and releases in one transaction, their
// NOTIFY lines joined into payloads under the limit.
func TestClaimAgentsBatch(t *testing.T) {
	t.Parallel()
	s := storetest.OpenPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := s.Listen(ctx, "claims")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var owners []store.Owner
	for i := range 500 {
		owners = append(owners, store.Owner{AgentID: fmt.Sprintf("agt_%04d", i), ReplicaID: "rpl_a"})
	}
	line := func(agent string, gen int64) string { return fmt.Sprintf("o %s rpl_a %d", agent, gen) }
	gens, err := s.ClaimAgents(ctx, owners, "claims", line)
	if err != nil || len(gens) != 500 || gens[0] != 1 || gens[499] != 1 {
		t.Fatalf("ClaimAgents = %v…, %v", gens[:min(3, len(gens))], err)
	}
	lines := 0
	for lines < 500 {
		p, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > store.MaxNotifyPayload {
			t.Fatalf("payload of %d bytes", len(p))
		}
		lines += len(strings.Split(p, "\n"))
	}
	if lines != 500 {
		t.Fatalf("%d notified lines, want 500", lines)
	}
	if _, err := s.ClaimAgents(ctx, []store.Owner{owners[0], owners[0]}, "", nil); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("one agent twice in a batch = %v", err)
	}
	done, err := s.ReleaseAgents(ctx, []store.Release{{AgentID: "agt_0000", Generation: 1}, {AgentID: "agt_0001", Generation: 9}}, "", nil)
	if err != nil || !done[0] || done[1] {
		t.Fatalf("ReleaseAgents = %v, %v; want [true false]", done, err)
	}
}
