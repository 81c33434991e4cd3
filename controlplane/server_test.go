package controlplane_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerHealthAndMetrics(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := controlplane.New(ctx, controlplane.Config{Listen: "127.0.0.1:0", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	}()
	base := "http://" + ln.Addr().String()

	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "alive") {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body := get(t, base+"/readyz")
	var ready struct {
		Status     string `json:"status"`
		Migrations int    `json:"migrations"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &ready) != nil || ready.Status != "ready" || ready.Migrations < 2 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	// An agent connected through the gateway shows in the gauge.
	if _, err := st.CreateEnterprise(ctx, "0367", "june"); err != nil {
		t.Fatal(err)
	}
	_, token, err := st.CreateAgent(ctx, "0367", "pbx", "")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: "ws://" + ln.Addr().String() + protocol.ConnectPath, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version}); err != nil {
		t.Fatal(err)
	}
	var w protocol.Welcome
	if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body = get(t, base+"/metrics")
		if strings.Contains(body, `switchboard_http_requests_total{code="200",method="GET",route="GET /readyz"} 1`) &&
			strings.Contains(body, "switchboard_agents_connected 1") && strings.Contains(body, "switchboard_tunnel_connects_total 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %d\n%s", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "switchboard_events_received_total 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// serveFor starts a control plane with cfg and returns its base URL.
func serveFor(t *testing.T, cfg controlplane.Config) string {
	t.Helper()
	cfg.Listen, cfg.Store = "127.0.0.1:0", storetest.OpenSQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := controlplane.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	return "http://" + ln.Addr().String()
}

// TestMetricsKeptFromAPIClients: /metrics can move to a listener of its
// own, or stay behind a bearer token.
func TestMetricsKeptFromAPIClients(t *testing.T) {
	t.Run("own listener", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		base := serveFor(t, controlplane.Config{MetricsListen: addr})
		if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
			t.Fatalf("main listener /metrics: %d", code)
		}
		var code int
		var body string
		for range 100 { // Serve opens it just after the main one
			if code, body = get(t, "http://"+addr+"/metrics"); code == http.StatusOK {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code != http.StatusOK || !strings.Contains(body, "switchboard_agents_connected") {
			t.Fatalf("metrics listener: %d %.200s", code, body)
		}
	})
	t.Run("bearer token", func(t *testing.T) {
		const token = "metrics-token-0123456789"
		base := serveFor(t, controlplane.Config{API: api.Config{MetricsToken: token}})
		if code, _ := get(t, base+"/metrics"); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("with token: %d", resp.StatusCode)
		}
	})
}

// TestConnLimitsValidated: the listener's limits are refused before
// anything opens, whether the maximum is set or derived from the
// open-files limit.
func TestConnLimitsValidated(t *testing.T) {
	for _, tc := range []struct {
		conns controlplane.ConnLimits
		want  string
	}{
		{controlplane.ConnLimits{Max: 50, Reserve: 50}, "must be fewer than"},
		{controlplane.ConnLimits{Reserve: 1 << 40}, "must be fewer than"},
		{controlplane.ConnLimits{ReserveTimeout: -time.Second}, "negative"},
	} {
		err := controlplane.Config{Conns: tc.conns}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.conns, err, tc.want)
		}
	}
	if err := (controlplane.Config{Conns: controlplane.ConnLimits{Max: 50, Reserve: 49}}).Validate(); err != nil {
		t.Errorf("valid limits refused: %v", err)
	}
}
