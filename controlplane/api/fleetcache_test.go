package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// TestFleetListAtMostTwiceTTLOld: GET /v1/fleet may answer from an
// expired agent list while one read refreshes it in the background, but
// never from a list read more than twice PBXCacheTTL before the request:
// a PBX created at t is in every answer to a request made after t+2×TTL,
// whether requests came meanwhile (the background read) or not.
func TestFleetListAtMostTwiceTTLOld(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{PBXCacheTTL: ttl}}})
	s.Enterprise(t, "0367", "june")
	admin := s.JWT(t, "", "root", "platform_admin")
	count := func() int {
		var v struct {
			Totals struct{ Agents int } `json:"totals"`
		}
		r := s.Do(t, "GET", "/v1/fleet", admin, nil)
		wantStatus(t, r, 200, "")
		r.JSON(t, &v)
		return v.Totals.Agents
	}
	for round, busy := range []bool{true, false} {
		before := count() // fills the cache
		if _, _, err := s.Store().CreateAgent(context.Background(), "0367", fmt.Sprint("late-", round), "inoffice"); err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		if busy {
			// Requests all along: the expired list is served while a
			// background read refreshes it.
			for time.Since(created) < 2*ttl {
				count()
				time.Sleep(20 * time.Millisecond)
			}
		} else {
			time.Sleep(2 * ttl)
		}
		if n := count(); n != before+1 {
			t.Fatalf("round %d: %v after the PBX was created the fleet shows %d agents, want %d", round, time.Since(created), n, before+1)
		}
	}
}
