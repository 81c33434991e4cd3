package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// TestCaches: a revoked key stops working within KeyCacheTTL, and a PBX
// registered a moment ago can be named at once even though the
// enterprise's cached PBX list (TTL an hour here) does not have it yet.
func TestCaches(t *testing.T) {
	const ttl = 300 * time.Millisecond
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{KeyCacheTTL: ttl, PBXCacheTTL: time.Hour}}})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367")
	key := s.APIKey(t, "0367")
	wantStatus(t, s.Do(t, "GET", "/v1/pbxs", key, nil), 200, "")

	second := s.AddPBX(t, "0367")
	r := s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151", "pbx": second.ID})
	wantStatus(t, r, 201, "")
	// Naming it refreshed the cached list, so "pbx" is now required.
	wantStatus(t, s.Do(t, "POST", "/v1/calls", key, map[string]any{"from": "150", "to": "151"}), 400, api.CodePBXRequired)

	id, _ := auth.ParseAPIKeyID(key)
	must(t, s.Store().RevokeAPIKey(context.Background(), id))
	revokedAt := time.Now()
	for {
		r := s.Do(t, "GET", "/v1/pbxs", key, nil)
		if r.Status == 401 {
			break
		}
		if time.Since(revokedAt) > ttl+2*time.Second {
			t.Fatalf("revoked key still accepted after %v: %d", time.Since(revokedAt), r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFilterNamesNewPBX: a filter may name a PBX registered after the
// enterprise's PBX list was cached (TTL an hour here) by its name.
func TestFilterNamesNewPBX(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{PBXCacheTTL: time.Hour}}})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367")
	key := s.APIKey(t, "0367")
	wantStatus(t, s.Do(t, "GET", "/v1/pbxs", key, nil), 200, "") // caches the list of one
	s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "june-branch"})
	wantStatus(t, s.Do(t, "GET", "/v1/calls?pbx=june-branch", key, nil), 200, "")
	wantStatus(t, s.Do(t, "GET", "/v1/calls?pbx=june-nosuch", key, nil), 404, api.CodeNotFound)
}
