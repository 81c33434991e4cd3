package fleet_test

import (
	"context"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet/fleettest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// The HTTP request id reaches the agent as the protocol request id, so the
// two sides' logs of one request can be matched.
func TestRequestIDTravelsToTheAgent(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	ids := make(chan string, 2)
	srv.Connect(t, "pbx-1", func(ctx context.Context, req protocol.Request) (any, error) {
		ids <- req.ID
		return protocol.PingResult{}, nil
	}, fleettest.AgentOptions{})
	ctx := withDeadline(t)
	if err := reg.Call(fleet.WithRequestID(ctx, "REQ123"), "pbx-1", protocol.OpPing, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-ids; got != "REQ123" {
		t.Fatalf("agent saw request id %q, want REQ123", got)
	}
	if err := reg.Call(ctx, "pbx-1", protocol.OpPing, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-ids; got == "" || got == "REQ123" {
		t.Fatalf("a call without an id got %q, want a fresh random one", got)
	}
}
