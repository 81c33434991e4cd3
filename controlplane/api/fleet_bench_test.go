package api_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// bareAPI is the API alone on a registry the test fills, with no agent
// tunnels (agents are refused): for benchmarks of handlers that never
// reach a PBX, and for the route table.
func bareAPI(tb testing.TB, st *store.Store, reg *fleet.Registry, cfg api.Config) *api.API {
	tb.Helper()
	ev, err := events.New(events.Config{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Store, cfg.Directory, cfg.Events, cfg.Agents = st, reg, ev, noAgents{}
	if cfg.Caller == nil {
		cfg.Caller = reg
	}
	a, err := api.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

type noAgents struct{}

func (noAgents) Connect(http.ResponseWriter, *http.Request) error {
	return &gateway.RefusedError{Status: http.StatusServiceUnavailable, Code: "unavailable", Reason: "no agents here"}
}

// BenchmarkFleet10k is GET /v1/fleet for a platform admin with 10,000
// agents (100 enterprises of 100), 9,000 of them connected, straight into
// the handler: one store query plus a registry lookup per agent, never a
// PBX. Filtered and unfiltered.
//
//	go test -run '^$' -bench BenchmarkFleet10k ./controlplane/api/
func BenchmarkFleet10k(b *testing.B) {
	st := storetest.Open(b, "sqlite::memory:")
	reg := fleet.NewRegistry(nil)
	ctx := context.Background()
	now := time.Now()
	for e := range 100 {
		number := fmt.Sprintf("%04d", e)
		ent, err := st.CreateEnterprise(ctx, number, "enterprise "+number)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 100 {
			ag, _, err := st.CreateAgent(ctx, number, fmt.Sprintf("pbx-%d", i), "")
			if err != nil {
				b.Fatal(err)
			}
			if i%10 == 9 {
				continue // offline
			}
			// A registry entry without a tunnel: the fleet view never calls it.
			c := fleet.NewConn(ag.ID, ent.ID, nil, protocol.Hello{Protocol: protocol.Version, AgentVersion: "1.0", Hostname: ag.Name, AMI: protocol.AMIUp}, now)
			c.SetStatus(protocol.Status{AgentVersion: "1.0", AMI: protocol.AMIUp, LiveCalls: i % 3, LiveChannels: i % 5, Time: now}, now)
			reg.Register(c)
		}
	}
	secret := []byte(rand.Text() + rand.Text())
	v, err := auth.NewJWTVerifier(auth.JWTConfig{HMACSecret: secret})
	if err != nil {
		b.Fatal(err)
	}
	mux := bareAPI(b, st, reg, api.Config{JWT: v, RateLimit: ratelimit.Config{PerCredential: rate.Inf, PerEnterprise: rate.Inf}}).Handler()
	tok, err := auth.MintHS256(secret, auth.OperatorClaims{Subject: "root", Roles: []string{auth.RolePlatformAdmin}}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"?limit=10000", "?connected=false&limit=100", "?enterprise=0042"} {
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v1/fleet"+q, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
