package agent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
)

const fallbackLog = `level=INFO msg="control plane speaks an older protocol`

func (cp *controlPlane) seenOffers() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Clone(cp.offers)
}

func (cp *controlPlane) hello(i int) protocol.Hello {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.hellos[i]
}

// An agent newer than its control plane (the fleet upgraded in the wrong
// order, or a rollback) redials at once speaking the control plane's
// version, and works: hello of that version, requests, status.
func TestAgentFallsBackToOlderControlPlane(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	cp.maxProtocol = protocol.MinVersion
	// With a minute of backoff, the session only comes up in time if the
	// redial after the refusal waits for none.
	runAgent(t, cp, srv.Addr(), logs, func(c *agent.Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Minute })
	eventually(t, "a session", func() bool { return cp.session() != nil })

	want := []string{fmt.Sprint(protocol.Version), fmt.Sprint(protocol.MinVersion)}
	if got := cp.seenOffers(); !slices.Equal(got, want) {
		t.Fatalf("offers %v, want %v", got, want)
	}
	if h := cp.hello(0); h.Protocol != protocol.MinVersion || len(h.Capabilities) != 0 {
		t.Fatalf("hello %+v, want protocol %d and no capabilities", h, protocol.MinVersion)
	}
	waitAction(t, srv, "Login")
	if resp := cp.call(t, protocol.OpPing, nil); resp.Error != nil {
		t.Fatalf("ping over the older protocol: %v", resp.Error)
	}
	eventually(t, "a status", func() bool { _, n := cp.lastStatus(); return n > 0 })
	if n := strings.Count(logs.String(), fallbackLog); n != 1 {
		t.Fatalf("fallback logged at info %d times, want once:\n%s", n, logs)
	}
}

// Every dial offers the agent's own version first, so the agent speaks it
// again once the control plane is upgraded; the fallback is logged once,
// not once per reconnect.
func TestAgentFallbackLoggedOnceAndUndone(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	cp.maxProtocol = protocol.MinVersion
	runAgent(t, cp, srv.Addr(), logs, nil)
	for i := 1; i <= 3; i++ {
		eventually(t, fmt.Sprintf("session %d", i), func() bool { return cp.sessionCount() == i && cp.session() != nil })
		if i < 3 {
			cp.dropSession()
		}
	}
	if n := strings.Count(logs.String(), fallbackLog); n != 1 {
		t.Fatalf("fallback logged %d times over 3 sessions, want once:\n%s", n, logs)
	}

	// The control plane is upgraded (restarted): the next session speaks
	// the agent's version, with the v2 Welcome.
	cp.mu.Lock()
	cp.maxProtocol = 0
	cp.mu.Unlock()
	cp.dropSession()
	eventually(t, "session 4", func() bool { return cp.sessionCount() == 4 && cp.session() != nil })
	if h := cp.hello(3); h.Protocol != protocol.Version {
		t.Fatalf("after the upgrade the hello speaks %d, want %d", h.Protocol, protocol.Version)
	}
	eventually(t, "the upgraded tunnel logged", func() bool {
		return strings.Contains(logs.String(), "control plane upgraded") &&
			strings.Contains(logs.String(), fmt.Sprintf("protocol=%d", protocol.Version)) &&
			strings.Contains(logs.String(), "control_plane_version=cp-test")
	})
}

// A control plane that shares no version with the agent keeps today's
// clear error and slow retry: no redial with a version the agent lacks.
func TestAgentNoCommonProtocol(t *testing.T) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(t, "127.0.0.1:0")
	cp := newControlPlane(t, testToken)
	cp.maxProtocol = protocol.Version + 1 // a newer control plane that dropped our version
	runAgent(t, cp, srv.Addr(), logs, func(c *agent.Config) { c.ReconnectMax = 20 * time.Millisecond })
	eventually(t, "the refusal to be logged", func() bool {
		return strings.Contains(logs.String(), "control plane speaks no protocol version this agent speaks")
	})
	for _, offer := range cp.seenOffers() {
		if offer != fmt.Sprint(protocol.Version) {
			t.Fatalf("offered %q to a control plane that named %d", offer, protocol.Version+1)
		}
	}
	if !strings.Contains(logs.String(), fmt.Sprintf("control_plane_protocol=%d", protocol.Version+1)) {
		t.Fatalf("the control plane's version is not in the log:\n%s", logs)
	}
	if cp.sessionCount() != 0 {
		t.Fatal("session opened without a common protocol")
	}
}
