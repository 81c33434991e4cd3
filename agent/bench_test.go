package agent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// BenchmarkPing compares a ping request sent by a control plane through
// the tunnel, the agent and AMI and back, with a direct AMI Ping to the
// same fake Asterisk. The difference is what the tunnel and the agent add.
// p50-µs is the median round trip.
func BenchmarkPing(b *testing.B) {
	logs := &testio.Buffer{}
	srv := fakeAsterisk(b, "127.0.0.1:0")
	cp := newControlPlane(b, testToken)
	runAgent(b, cp, srv.Addr(), logs, nil)
	waitAction(b, srv, "CoreShowChannels")
	eventually(b, "a session", func() bool { return cp.session() != nil })

	b.Run("direct-ami", func(b *testing.B) {
		ctx := context.Background()
		c, err := ami.Dial(ctx, ami.Config{Addr: srv.Addr(), Username: "switchboard", Secret: testAMISecret, Events: "off"})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		median(b, func() {
			if _, err := c.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("control-plane-agent-ami", func(b *testing.B) {
		median(b, func() {
			if resp := cp.call(b, protocol.OpPing, nil); resp.Error != nil {
				b.Fatal(resp.Error)
			}
		})
	})
}

func median(b *testing.B, f func()) {
	b.Helper()
	var d []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		f()
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
}
