package tunnel

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestMaxDroppedStreams: a peer that keeps opening streams the acceptor
// must drop (each may hold a stream window of data until the peer closes
// it) loses its session at the limit; below it, Accept skips them.
func TestMaxDroppedStreams(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: AcceptConfig{MaxDroppedStreams: 3}})
	agent, control := dialPair(t, ts, DialConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		bad, err := agent.Open(ctx, protocol.StreamKind(200))
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
	}
	_, _, err := control.Accept(ctx)
	if !errors.Is(err, ErrTooManyDropped) {
		t.Fatalf("Accept = %v, want ErrTooManyDropped", err)
	}
	waitDone(t, agent, 3*time.Second)
}

func TestMaxDroppedStreamsValidate(t *testing.T) {
	if err := (AcceptConfig{MaxDroppedStreams: -1}).Validate(); err == nil {
		t.Fatal("negative MaxDroppedStreams accepted")
	}
}
