package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/protocol"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestHTTPRequestLabels(t *testing.T) {
	m := New(func() int { return 3 })
	m.HTTPRequest("GET /v1/calls/{id}", "GET", 404, time.Millisecond, false)
	m.HTTPRequest("GET /v1/calls/{id}", "GET", 404, 2*time.Millisecond, false)
	m.HTTPRequest("/", "GET", 404, time.Millisecond, false)
	m.HTTPRequest("GET /agent/v1/connect", "GET", 101, time.Hour, true)
	m.RateLimited("request")
	out := scrape(t, m)
	for _, want := range []string{
		`switchboard_http_requests_total{code="404",method="GET",route="GET /v1/calls/{id}"} 2`,
		`switchboard_http_requests_total{code="404",method="GET",route="/"} 1`,
		`switchboard_http_requests_total{code="101",method="GET",route="GET /agent/v1/connect"} 1`,
		`switchboard_http_request_duration_seconds_count{method="GET",route="GET /v1/calls/{id}"} 2`,
		`switchboard_rate_limited_total{scope="request"} 1`,
		`switchboard_agents_connected 3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(out, `switchboard_http_request_duration_seconds_count{method="GET",route="GET /agent/v1/connect"}`) {
		t.Error("tunnel sessions must stay out of the latency histogram")
	}
}

type fakeCaller struct{ err error }

func (f fakeCaller) Call(context.Context, string, string, any, any) error { return f.err }
func (f fakeCaller) Fetch(context.Context, string, string, any, any) (io.ReadCloser, error) {
	return nil, f.err
}

func TestCallerResults(t *testing.T) {
	m := New(func() int { return 0 })
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fleet.ErrOffline, "offline"},
		{fmt.Errorf("call: %w", &protocol.Error{Code: protocol.ErrCodeNotFound}), "not_found"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("boom"), "internal"},
	}
	for _, tc := range tests {
		err := m.Caller(fakeCaller{tc.err}).Call(context.Background(), "agt_1", protocol.OpHangup, nil, nil)
		if !errors.Is(err, tc.err) {
			t.Fatalf("decorator changed the error: %v", err)
		}
	}
	out := scrape(t, m)
	for _, tc := range tests {
		want := fmt.Sprintf(`switchboard_agent_requests_total{op="hangup",result=%q} 1`, tc.want)
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(out, `switchboard_agent_request_duration_seconds_count{op="hangup"} 5`) {
		t.Error("latency not observed")
	}
}
