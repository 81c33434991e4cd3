package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		s.CreateEnterprise(ctx, "0400", "Other")

		// Scopes come back de-duplicated in canonical order.
		k, key, err := s.CreateAPIKey(ctx, "0367", "crm", []string{store.ScopeHangup, store.ScopeOriginate, store.ScopeHangup})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, "sbk_key_") || k.Prefix != "sbk_"+k.ID || store.PublicID(key) != k.ID {
			t.Fatalf("key %+v / %q: unexpected shape", k, key)
		}
		if !slices.Equal(k.Scopes, []string{store.ScopeOriginate, store.ScopeHangup}) ||
			!k.HasScope(store.ScopeHangup) || k.HasScope(store.ScopeAuditRead) {
			t.Fatalf("scopes %v", k.Scopes)
		}
		got, err := s.APIKeyByToken(ctx, key)
		if err != nil || !apiKeysEqual(got, k) || got.EnterpriseID != e.ID {
			t.Fatalf("APIKeyByToken = %+v, %v; want %+v", got, err, k)
		}

		wrong := key[:len(key)-1] + "a"
		if wrong == key {
			wrong = key[:len(key)-1] + "b"
		}
		_, agentToken, _ := s.CreateAgent(ctx, "0367", "pbx", "")
		for name, tok := range map[string]string{"wrong secret": wrong, "agent token": agentToken, "empty": "", "prefix only": k.Prefix} {
			if _, err := s.APIKeyByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: APIKeyByToken = %v, want ErrNotFound", name, err)
			}
		}

		clk.Advance(time.Second)
		k2, _, err := s.CreateAPIKey(ctx, "0400", "bot", store.AllowedScopes())
		if err != nil || !slices.Equal(k2.Scopes, store.AllowedScopes()) {
			t.Fatalf("all scopes: %+v, %v", k2, err)
		}
		list, err := s.ListAPIKeys(ctx, e.ID)
		if err != nil || len(list) != 1 || !apiKeysEqual(list[0], k) {
			t.Fatalf("ListAPIKeys(enterprise) = %+v, %v", list, err)
		}
		all, err := s.ListAPIKeys(ctx, 0)
		if err != nil || len(all) != 2 || all[1].ID != k2.ID {
			t.Fatalf("ListAPIKeys(all) = %+v, %v", all, err)
		}

		s.SetEnterpriseActive(ctx, e.ID, false)
		if _, err := s.APIKeyByToken(ctx, key); !errors.Is(err, store.ErrEnterpriseInactive) {
			t.Fatalf("APIKeyByToken(inactive enterprise) = %v", err)
		}
		s.SetEnterpriseActive(ctx, e.ID, true)

		if err := s.RevokeAPIKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.APIKeyByToken(ctx, key); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("APIKeyByToken(revoked) = %v, want ErrRevoked", err)
		}
		if err := s.RevokeAPIKey(ctx, k.ID); !errors.Is(err, store.ErrRevoked) {
			t.Fatalf("second RevokeAPIKey = %v", err)
		}
		if err := s.RevokeAPIKey(ctx, "key_nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeAPIKey(unknown) = %v", err)
		}
		if list, _ := s.ListAPIKeys(ctx, e.ID); len(list) != 1 || !list[0].Revoked() {
			t.Fatalf("revoked key listed as %+v", list)
		}
	})
}

func apiKeysEqual(a, b store.APIKey) bool {
	return a.ID == b.ID && a.EnterpriseID == b.EnterpriseID && a.EnterpriseNumber == b.EnterpriseNumber &&
		a.Name == b.Name && a.Prefix == b.Prefix && slices.Equal(a.Scopes, b.Scopes) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.RevokedAt.Equal(b.RevokedAt)
}

func TestCreateAPIKeyErrors(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CreateEnterprise(ctx, "0367", "Acme")
		tests := []struct {
			name, number, keyName string
			scopes                []string
			want                  error
		}{
			{"unknown enterprise", "0999", "k", []string{store.ScopeHangup}, store.ErrNotFound},
			{"no scopes", "0367", "k", nil, store.ErrInvalid},
			{"unknown scope", "0367", "k", []string{"hangup", "admin"}, store.ErrInvalid},
			{"scope case", "0367", "k", []string{"Hangup"}, store.ErrInvalid},
			{"empty name", "0367", " ", []string{store.ScopeHangup}, store.ErrInvalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if _, key, err := s.CreateAPIKey(ctx, tc.number, tc.keyName, tc.scopes); !errors.Is(err, tc.want) || key != "" {
					t.Fatalf("CreateAPIKey = %q, %v; want %v", key, err, tc.want)
				}
			})
		}
		if list, _ := s.ListAPIKeys(ctx, 0); len(list) != 0 {
			t.Fatalf("rejected input created keys: %+v", list)
		}
	})
}

func TestAllowedScopes(t *testing.T) {
	t.Parallel()
	want := []string{"originate", "monitor", "hangup", "channels:read", "events:read", "audit:read",
		"calls:control", "recordings", "recordings:read", "queues:read", "queues:manage"}
	got := store.AllowedScopes()
	if !slices.Equal(got, want) {
		t.Fatalf("AllowedScopes() = %v, want %v", got, want)
	}
	got[0] = "mutated"
	if !store.IsAllowedScope("originate") || store.IsAllowedScope("mutated") {
		t.Fatal("AllowedScopes returned the package's own slice")
	}
}
