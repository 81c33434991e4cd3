package gateway_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane/metrics"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// TestHugeCallerExtensionEndToEnd is the review's wedged PBX with the real
// parts: a fake Asterisk whose caller extension is 200 KB, the real agent,
// the real gateway and store. Before, the agent's 1.4 MB batch was over
// the 1 MiB frame limit, the session dropped, and the same batch was
// refused after every reconnect: nothing from that PBX was stored and it
// showed offline. Now the call's events are stored with the caller cut
// and marked, over one session.
func TestHugeCallerExtensionEndToEnd(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	r := newRigWith(t, withMetrics(m, nil))
	pbx, err := amitest.New(amitest.Config{Addr: "127.0.0.1:0", Users: map[string]string{"switchboard": "ami-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pbx.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pbx.Close)
	a, err := agent.New(agent.Config{
		Server: r.url, Token: r.token, Hostname: "pbx-june",
		AMI:          ami.Config{Addr: pbx.Addr(), Username: "switchboard", Secret: "ami-secret"},
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the agent connected", func() bool { return r.reg.Len() == 1 })

	huge := strings.Repeat("7", 200<<10)
	id, err := pbx.StartCall(huge, "150")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call answered", func() bool { _, ok := a.Channels().LiveForExtension("150"); return ok })
	if err := pbx.Hangup(id, 16); err != nil {
		t.Fatal(err)
	}
	var evs []store.StoredEvent
	waitFor(t, "call.ended stored", func() bool {
		evs, err = r.st.ListEvents(ctx, store.EventFilter{EnterpriseID: r.agent.EnterpriseID, Limit: 1000})
		return err == nil && len(evs) > 0 && evs[len(evs)-1].Event.Type == protocol.EventCallEnded
	})
	for _, se := range evs {
		e := se.Event
		if e.CallID != id {
			continue
		}
		if len(e.From) > agent.DefaultMaxEventFieldBytes || !slices.Contains(e.Truncated, "from") {
			t.Fatalf("%s stored with from of %d bytes, truncated %v", e.Type, len(e.From), e.Truncated)
		}
	}
	if v := metricValue(t, m, "switchboard_tunnel_connects_total"); v != 1 {
		t.Fatalf("%v sessions: the PBX flapped", v)
	}
	if v := metricValue(t, m, `switchboard_agent_limit_violations_total{reason="frame_too_large"}`); v > 0 {
		t.Fatalf("%v frames refused", v)
	}
}
