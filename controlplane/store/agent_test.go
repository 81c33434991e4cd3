package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestAgents(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		other, _ := s.CreateEnterprise(ctx, "0400", "Other")

		a, token, err := s.CreateAgent(ctx, "0367", "pbx-main", "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, "sbat_agt_") || !strings.HasPrefix(a.ID, "agt_") || a.TokenPrefix != "sbat_"+a.ID {
			t.Fatalf("agent %+v token %q: unexpected shape", a, token)
		}
		if secret := strings.TrimPrefix(token, a.TokenPrefix+"_"); len(secret) != 52 || secret == token {
			t.Fatalf("token %q is not prefix %q + _ + 52-char secret", token, a.TokenPrefix)
		}
		if store.PublicID(token) != a.ID {
			t.Fatalf("PublicID(token) = %q, want %q", store.PublicID(token), a.ID)
		}
		if a.Context != store.DefaultContext || a.EnterpriseID != e.ID || a.EnterpriseNumber != "0367" || a.Revoked() {
			t.Fatalf("agent %+v", a)
		}

		got, err := s.AgentByToken(ctx, token)
		if err != nil || got != a {
			t.Fatalf("AgentByToken = %+v, %v; want %+v", got, err, a)
		}
		if got, err := s.AgentByID(ctx, a.ID); err != nil || got != a {
			t.Fatalf("AgentByID = %+v, %v", got, err)
		}

		// Wrong secret for a valid id, a token of another kind, garbage: all ErrNotFound.
		wrong := token[:len(token)-4] + "aaaa"
		if wrong == token {
			wrong = token[:len(token)-4] + "bbbb"
		}
		_, apiKey, err := s.CreateAPIKey(ctx, "0367", "k", []string{store.ScopeHangup})
		if err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{
			"wrong secret": wrong, "api key": apiKey, "empty": "", "garbage": "sbat_agt_x_y",
			"unknown id": "sbat_agt_" + strings.Repeat("a", 16) + "_" + strings.Repeat("b", 52),
			"uppercase":  strings.ToUpper(token),
		} {
			if _, err := s.AgentByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: AgentByToken = %v, want ErrNotFound", name, err)
			}
		}

		clk.Advance(time.Second)
		b, _, err := s.CreateAgent(ctx, "0367", "pbx-backup", "from-internal")
		if err != nil || b.Context != "from-internal" {
			t.Fatalf("CreateAgent with context = %+v, %v", b, err)
		}
		clk.Advance(time.Second)
		c, _, _ := s.CreateAgent(ctx, "0400", "pbx-other", "")

		list, err := s.ListAgents(ctx, e.ID)
		if err != nil || len(list) != 2 || list[0] != a || list[1] != b {
			t.Fatalf("ListAgents(enterprise) = %+v, %v", list, err)
		}
		all, err := s.ListAgents(ctx, 0)
		if err != nil || len(all) != 3 || all[2].ID != c.ID || all[2].EnterpriseID != other.ID {
			t.Fatalf("ListAgents(all) = %+v, %v", all, err)
		}
		byNum, err := s.AgentsByEnterprise(ctx, "0400")
		if err != nil || len(byNum) != 1 || byNum[0].ID != c.ID {
			t.Fatalf("AgentsByEnterprise = %+v, %v", byNum, err)
		}
		if _, err := s.AgentsByEnterprise(ctx, "0999"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentsByEnterprise(unknown) = %v", err)
		}

		// Last seen and acknowledged sequence.
		seen := clk.Now().Add(time.Minute)
		if err := s.TouchAgent(ctx, a.ID, seen); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchAgent(ctx, "agt_nope", seen); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TouchAgent(unknown) = %v", err)
		}
		if err := s.SetAgentAckedSeq(ctx, a.ID, 42); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAgentAckedSeq(ctx, a.ID, 41); err != nil { // stale ack: ignored, not an error
			t.Fatal(err)
		}
		if seq, err := s.AgentAckedSeq(ctx, a.ID); err != nil || seq != 42 {
			t.Fatalf("AgentAckedSeq = %d, %v; want 42", seq, err)
		}
		if err := s.SetAgentAckedSeq(ctx, "agt_nope", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetAgentAckedSeq(unknown) = %v", err)
		}
		if err := s.SetAgentAckedSeq(ctx, a.ID, -1); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("SetAgentAckedSeq(-1) = %v", err)
		}
		if _, err := s.AgentAckedSeq(ctx, "agt_nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AgentAckedSeq(unknown) = %v", err)
		}
		got, _ = s.AgentByID(ctx, a.ID)
		if !got.LastSeenAt.Equal(seen) || got.LastAckedSeq != 42 {
			t.Fatalf("after touch+ack: %+v", got)
		}
		// Many at once, in one write; unknown ids are skipped.
		later := seen.Add(time.Minute)
		if err := s.TouchAgents(ctx, map[string]time.Time{a.ID: later, "agt_nope": later}); err != nil {
			t.Fatal(err)
		}
		if got, _ = s.AgentByID(ctx, a.ID); !got.LastSeenAt.Equal(later) {
			t.Fatalf("after TouchAgents: last seen %v, want %v", got.LastSeenAt, later)
		}
		if err := s.TouchAgents(ctx, map[string]time.Time{a.ID: {}}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("TouchAgents(zero time) = %v", err)
		}
		if got, _ = s.AgentByID(ctx, a.ID); !got.LastSeenAt.Equal(later) {
			t.Fatalf("a refused TouchAgents changed last seen to %v", got.LastSeenAt)
		}

		// Disabled enterprise: the secret is right but the agent may not connect.
		if err := s.SetEnterpriseActive(ctx, e.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AgentByToken(ctx, token); !errors.Is(err, store.ErrEnterpriseInactive) {
			t.Fatalf("AgentByToken(inactive enterprise) = %v", err)
		}
		s.SetEnterpriseActive(ctx, e.ID, true)

		// Revocation.
		clk.Advance(time.Hour)
		if err := s.RevokeAgent(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AgentByToken(ctx, token); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("AgentByToken(revoked) = %v, want ErrRevoked", err)
		}
		if _, err := s.AgentByToken(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("wrong secret of revoked agent = %v, want ErrNotFound (revocation is not revealed)", err)
		}
		if err := s.RevokeAgent(ctx, a.ID); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("second RevokeAgent = %v, want ErrRevoked", err)
		}
		if err := s.RevokeAgent(ctx, "agt_nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeAgent(unknown) = %v", err)
		}
		got, _ = s.AgentByID(ctx, a.ID)
		if !got.Revoked() || !got.RevokedAt.Equal(clk.Now().Truncate(time.Microsecond)) {
			t.Fatalf("revoked agent %+v", got)
		}
	})
}

func TestCreateAgentErrors(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CreateEnterprise(ctx, "0367", "Acme")
		tests := []struct {
			name, number, agentName, context string
			want                             error
		}{
			{"unknown enterprise", "0999", "pbx", "", store.ErrNotFound},
			{"bad enterprise number", "abc", "pbx", "", store.ErrInvalid},
			{"empty name", "0367", "", "", store.ErrInvalid},
			{"context with space", "0367", "pbx", "in office", store.ErrInvalid},
			{"context injection", "0367", "pbx", "x\r\nAction: Command", store.ErrInvalid},
			{"context too long", "0367", "pbx", strings.Repeat("c", 80), store.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, tok, err := s.CreateAgent(ctx, tc.number, tc.agentName, tc.context); !errors.Is(err, tc.want) || tok != "" {
					t.Fatalf("CreateAgent = %q, %v; want %v", tok, err, tc.want)
				}
			})
		}
		if list, _ := s.ListAgents(ctx, 0); len(list) != 0 {
			t.Fatalf("rejected input created agents: %+v", list)
		}
	})
}

// TestAgentNamesUnique: a PBX is named by id or name, so a live agent's
// name is unique in its enterprise; once revoked, its replacement may
// take it, and another enterprise may always use it.
func TestAgentNamesUnique(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CreateEnterprise(ctx, "0367", "Acme")
		s.CreateEnterprise(ctx, "0400", "Other")
		a, _, err := s.CreateAgent(ctx, "0367", "pbx-main", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, tok, err := s.CreateAgent(ctx, "0367", " pbx-main ", ""); !errors.Is(err, store.ErrConflict) || tok != "" ||
			!strings.Contains(err.Error(), `already has a PBX named "pbx-main"`) {
			t.Fatalf("duplicate name: %q, %v", tok, err)
		}
		if _, _, err := s.CreateAgent(ctx, "0400", "pbx-main", ""); err != nil {
			t.Fatalf("another enterprise's name: %v", err)
		}
		if err := s.RevokeAgent(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateAgent(ctx, "0367", "pbx-main", ""); err != nil {
			t.Fatalf("the revoked agent's replacement: %v", err)
		}
		if list, _ := s.ListAgents(ctx, 0); len(list) != 3 {
			t.Fatalf("%d agents, want 3", len(list))
		}
	})
}
