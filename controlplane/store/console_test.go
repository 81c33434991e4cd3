package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestConsoleSessions(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		k, _, err := s.CreateAPIKey(ctx, "0367", "crm", []string{store.ScopeOriginate, store.ScopeHangup})
		if err != nil {
			t.Fatal(err)
		}
		exp := clk.Now().Add(time.Hour)
		sess, token, evicted, err := s.CreateConsoleSession(ctx, store.ConsoleSession{
			ActorType: store.ActorAPIKey, ActorID: k.ID, EnterpriseID: e.ID, ExpiresAt: exp}, 0)
		if err != nil || evicted != 0 {
			t.Fatalf("CreateConsoleSession: %v (evicted %d)", err, evicted)
		}
		if !strings.HasPrefix(token, "sbs_ses_") || !strings.HasPrefix(sess.ID, "ses_") || !strings.Contains(token, sess.ID) {
			t.Fatalf("token %q, id %q", token, sess.ID)
		}
		got, err := s.ConsoleSessionByToken(ctx, token)
		if err != nil || got.ActorID != k.ID || got.EnterpriseID != e.ID || got.EnterpriseNumber != "0367" ||
			!slices.Equal(got.Scopes, k.Scopes) || !got.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) {
			t.Fatalf("ConsoleSessionByToken = %+v, %v", got, err)
		}
		wrong := token[:len(token)-1] + "a"
		if wrong == token {
			wrong = token[:len(token)-1] + "b"
		}
		for name, tok := range map[string]string{"wrong secret": wrong, "empty": "", "api key shape": "sbk_" + strings.TrimPrefix(token, "sbs_")} {
			if _, err := s.ConsoleSessionByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}

		// An operator session keeps its roles; the platform view has no enterprise.
		_, opTok, _, err := s.CreateConsoleSession(ctx, store.ConsoleSession{
			ActorType: store.ActorOperator, ActorID: "root", Roles: []string{"platform_admin"}, ExpiresAt: exp}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if op, err := s.ConsoleSessionByToken(ctx, opTok); err != nil || op.EnterpriseID != 0 || !slices.Equal(op.Roles, []string{"platform_admin"}) || op.Scopes != nil {
			t.Fatalf("operator session = %+v, %v", op, err)
		}

		// Revoking the key ends its session; disabling the enterprise too.
		if err := s.RevokeAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsoleSessionByToken(ctx, token); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("after revoke: %v, want ErrRevoked", err)
		}
		_, supTok, _, _ := s.CreateConsoleSession(ctx, store.ConsoleSession{
			ActorType: store.ActorOperator, ActorID: "sup", EnterpriseID: e.ID, Roles: []string{"supervisor"}, ExpiresAt: exp}, 0)
		if err := s.SetEnterpriseActive(ctx, e.ID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsoleSessionByToken(ctx, supTok); !errors.Is(err, store.ErrEnterpriseInactive) {
			t.Fatalf("inactive enterprise: %v", err)
		}
		if err := s.SetEnterpriseActive(ctx, e.ID, true); err != nil {
			t.Fatal(err)
		}

		// Expiry: the session stops at its end, and the next creation
		// deletes it.
		clk.Advance(time.Hour)
		if _, err := s.ConsoleSessionByToken(ctx, supTok); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired: %v, want ErrNotFound", err)
		}
		if _, _, _, err := s.CreateConsoleSession(ctx, store.ConsoleSession{ActorType: store.ActorOperator, ActorID: "x",
			EnterpriseID: e.ID, Roles: []string{"operator"}, ExpiresAt: clk.Now()}, 0); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("expiry now: %v, want ErrInvalid", err)
		}
		_, newTok, _, err := s.CreateConsoleSession(ctx, store.ConsoleSession{ActorType: store.ActorOperator, ActorID: "x",
			EnterpriseID: e.ID, Roles: []string{"operator"}, ExpiresAt: clk.Now().Add(time.Minute)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "console_sessions"); n != 1 {
			t.Fatalf("%d sessions left after the expired ones were pruned, want 1", n)
		}

		// Sign out.
		ns, _ := s.ConsoleSessionByToken(ctx, newTok)
		if err := s.DeleteConsoleSession(ctx, ns.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsoleSessionByToken(ctx, newTok); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after sign out: %v", err)
		}
		if err := s.DeleteConsoleSession(ctx, ns.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second sign out: %v", err)
		}
		for _, bad := range []store.ConsoleSession{
			{ActorType: "system", ActorID: "x", ExpiresAt: clk.Now().Add(time.Hour)},
			{ActorType: store.ActorOperator, ActorID: "", ExpiresAt: clk.Now().Add(time.Hour)},
			{ActorType: store.ActorOperator, ActorID: "x", Roles: []string{"a,b"}, ExpiresAt: clk.Now().Add(time.Hour)},
		} {
			if _, _, _, err := s.CreateConsoleSession(ctx, bad, 0); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("%+v: %v, want ErrInvalid", bad, err)
			}
		}
	})
}

// TestConsoleSessionsPerCredential: past the bound, a credential's oldest
// sessions go; other credentials' stay.
func TestConsoleSessionsPerCredential(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		mk := func(sub string) (string, int) {
			t.Helper()
			clk.Advance(time.Millisecond)
			_, tok, evicted, err := s.CreateConsoleSession(ctx, store.ConsoleSession{ActorType: store.ActorOperator, ActorID: sub,
				EnterpriseID: e.ID, Roles: []string{"operator"}, ExpiresAt: clk.Now().Add(time.Hour)}, 2)
			if err != nil {
				t.Fatal(err)
			}
			return tok, evicted
		}
		other, _ := mk("other")
		first, _ := mk("op")
		second, _ := mk("op")
		third, evicted := mk("op")
		if evicted != 1 {
			t.Fatalf("evicted %d, want 1", evicted)
		}
		if _, err := s.ConsoleSessionByToken(ctx, first); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("oldest session: %v, want ErrNotFound", err)
		}
		for _, tok := range []string{other, second, third} {
			if _, err := s.ConsoleSessionByToken(ctx, tok); err != nil {
				t.Errorf("kept session: %v", err)
			}
		}
	})
}

func TestConsoleLinks(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		s.CreateEnterprise(ctx, "0367", "Acme")
		l, tok, err := s.CreateConsoleLink(ctx, "0367", "", []string{"supervisor"}, 8*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, store.ConsoleLinkPrefix+"lnk_") || l.Subject != l.ID || !l.ExpiresAt.Equal(clk.Now().Add(8*time.Hour)) {
			t.Fatalf("link %+v, token %q", l, tok)
		}
		// Single use, even when two redeem at once.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []store.ConsoleLink
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.RedeemConsoleLink(ctx, tok)
				if err == nil {
					mu.Lock()
					won = append(won, got)
					mu.Unlock()
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("redeem: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 || won[0].EnterpriseNumber != "0367" || !slices.Equal(won[0].Roles, []string{"supervisor"}) || won[0].Subject != l.ID {
			t.Fatalf("redeemed %+v, want exactly one supervisor link of 0367", won)
		}

		// Expired links are refused; the platform link needs no enterprise.
		_, tok2, err := s.CreateConsoleLink(ctx, "", "root", []string{"platform_admin"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		if _, err := s.RedeemConsoleLink(ctx, tok2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired link: %v", err)
		}
		for name, bad := range map[string]func() error{
			"no roles": func() error { _, _, err := s.CreateConsoleLink(ctx, "0367", "", nil, time.Hour); return err },
			"zero ttl": func() error { _, _, err := s.CreateConsoleLink(ctx, "0367", "", []string{"operator"}, 0); return err },
			"unknown enterprise": func() error {
				_, _, err := s.CreateConsoleLink(ctx, "0999", "", []string{"operator"}, time.Hour)
				return err
			},
		} {
			if err := bad(); !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := s.RedeemConsoleLink(ctx, "sbl_nonsense"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("mangled: %v", err)
		}
	})
}

func countRows(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	n, err := s.CountRows(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
