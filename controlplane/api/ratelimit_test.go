package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// rateBurst is the burst of the credential bucket in TestRateLimitEveryRoute.
// Its refill (one token a minute) does not land within the test.
const rateBurst = 3

// TestRateLimitEveryRoute: one chain, one limit. The event, webhook and
// call history routes count against the credential's bucket like any
// other route (they used to have a chain of their own without limits),
// and a WebSocket stream counts once, at its upgrade, however many
// events it then carries.
func TestRateLimitEveryRoute(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{
		RateLimit: ratelimit.Config{PerCredential: rate.Every(time.Minute), CredentialBurst: rateBurst},
	}}})
	s.Enterprise(t, "0367", "june")
	pbx := s.AddPBX(t, "0367")
	for _, rt := range []struct{ method, path string }{
		{"GET", "/v1/events?after=0"},
		{"GET", "/v1/webhooks"},
		{"POST", "/v1/webhooks"},
		{"GET", "/v1/calls"},
		{"GET", "/v1/calls/nope"},
		{"POST", "/v1/events/ticket"},
		{"GET", "/v1/channels"},
	} {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			key := s.APIKey(t, "0367")
			for range rateBurst {
				if r := s.Do(t, rt.method, rt.path, key, nil); r.Status == http.StatusTooManyRequests {
					t.Fatalf("limited within the burst: %s", r.Body)
				}
			}
			r := s.Do(t, rt.method, rt.path, key, nil)
			wantStatus(t, r, http.StatusTooManyRequests, api.CodeRateLimited)
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		})
	}

	t.Run("WebSocket counts once", func(t *testing.T) {
		key := s.APIKey(t, "0367")
		caller := s.APIKey(t, "0367") // places calls from its own bucket
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws := dialEvents(t, ctx, s, key)
		// Far more messages than the burst arrive on the one upgrade.
		const calls = rateBurst + 2
		for i := range calls {
			wantStatus(t, s.Do(t, "POST", "/v1/calls", caller, map[string]any{"from": "150", "to": "151"}), http.StatusCreated, "")
			if i == rateBurst-1 {
				caller = s.APIKey(t, "0367")
			}
		}
		for n := 0; n < calls; {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("stream ended after %d call.started: %v", n, err)
			}
			if strings.Contains(string(b), `"type":"call.started"`) && strings.Contains(string(b), pbx.ID) {
				n++
			}
		}
		// The upgrade took one token: two are left, then the limit.
		for range rateBurst - 1 {
			wantStatus(t, s.Do(t, "GET", "/v1/calls", key, nil), http.StatusOK, "")
		}
		wantStatus(t, s.Do(t, "GET", "/v1/calls", key, nil), http.StatusTooManyRequests, api.CodeRateLimited)
		// And an upgrade past the limit is refused before it happens.
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/events",
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("upgrade past the limit: err %v, response %+v", err, resp)
		}
	})
}

// TestRateLimitOperatorsOfTwoEnterprises: the credential bucket of an
// operator is keyed by enterprise and subject, so two enterprises'
// operators with the same sub do not throttle each other.
func TestRateLimitOperatorsOfTwoEnterprises(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{
		RateLimit: ratelimit.Config{PerCredential: rate.Every(time.Minute), CredentialBurst: rateBurst},
	}}})
	s.Enterprise(t, "0367", "june")
	s.Enterprise(t, "0420", "acme")
	a, b := s.JWT(t, "0367", "op-1", "operator"), s.JWT(t, "0420", "op-1", "operator")
	for range rateBurst {
		wantStatus(t, s.Do(t, "GET", "/v1/calls", a, nil), http.StatusOK, "")
	}
	wantStatus(t, s.Do(t, "GET", "/v1/calls", a, nil), http.StatusTooManyRequests, api.CodeRateLimited)
	wantStatus(t, s.Do(t, "GET", "/v1/calls", b, nil), http.StatusOK, "")
}

func dialEvents(t *testing.T, ctx context.Context, s *systemtest.Server, key string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/v1/events",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}
