package gateway_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// BenchmarkSessionCost connects agents to the real gateway — tunnel,
// Hello, Status, events stream — and reports what one connected agent
// costs. Both ends run in this process: the agent side here is the bare
// tunnel client (yamux's receive, send and keepalive loops: 3 goroutines),
// so the gateway's share is goroutines/agent − 3. The control plane's
// memory in a real 10,000-PBX run is in the README (switchboard-load).
//
//	go test -run '^$' -bench SessionCost -benchtime 1x ./controlplane/gateway/
func BenchmarkSessionCost(b *testing.B) {
	const agents = 500
	ctx := context.Background()
	r := newRig(b)
	tokens := make([]string, agents)
	for i := range tokens {
		_, tok, err := r.st.CreateAgent(ctx, "0367", fmt.Sprint("pbx-", i), "inoffice")
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		sessions := make([]*tunnel.Session, 0, agents)
		for _, tok := range tokens {
			sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: tok})
			if err != nil {
				b.Fatal(err)
			}
			sessions = append(sessions, sess)
			ctrl, err := sess.Open(ctx, protocol.StreamControl)
			if err != nil {
				b.Fatal(err)
			}
			if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version, AgentVersion: "bench", Hostname: "pbx", AMI: protocol.AMIUp}); err != nil {
				b.Fatal(err)
			}
			var w protocol.Welcome
			if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
				b.Fatal(err)
			}
			if err := protocol.WriteFrame(ctrl, protocol.Status{AMI: protocol.AMIUp}); err != nil {
				b.Fatal(err)
			}
			if _, err := sess.Open(ctx, protocol.StreamEvents); err != nil {
				b.Fatal(err)
			}
		}
		waitFor(b, "registration", func() bool { return r.reg.Len() == agents })
		time.Sleep(100 * time.Millisecond) // the events streams' accepts
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/agents, "goroutines/agent")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/agents, "heap-B/agent")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/agents, "stack-B/agent")
		for _, s := range sessions {
			s.Close()
		}
		waitFor(b, "unregistration", func() bool { return r.reg.Len() == 0 })
	}
}

// BenchmarkParkedStreams replays the review's stream attack: one agent,
// after its events stream, opens 256 streams and writes 256 KiB into each,
// and the gateway never accepts them. It reports the heap they hold while
// the session lives: with the old accept backlog of 256 that was a stream
// window per stream (the review saw RSS go from 35 to 218 MB); with
// Limits.StreamBacklog only that many are kept and the rest are reset.
//
//	go test -run '^$' -bench ParkedStreams -benchtime 1x ./controlplane/gateway/
func BenchmarkParkedStreams(b *testing.B) {
	for _, backlog := range []int{gateway.DefaultStreamBacklog, 256} {
		b.Run(fmt.Sprint("backlog=", backlog), func(b *testing.B) {
			r := newRigWith(b, func(c *gateway.Config) { c.StreamBacklog = backlog })
			ctx := context.Background()
			payload := make([]byte, tunnel.StreamWindowBytes-1)
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
				if err != nil {
					b.Fatal(err)
				}
				ctrl, err := sess.Open(ctx, protocol.StreamControl)
				if err != nil {
					b.Fatal(err)
				}
				if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version, AgentVersion: "bench", Hostname: "pbx", AMI: protocol.AMIUp}); err != nil {
					b.Fatal(err)
				}
				var w protocol.Welcome
				if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := sess.Open(ctx, protocol.StreamEvents); err != nil {
					b.Fatal(err)
				}
				waitFor(b, "registration", func() bool { return r.reg.Len() == 1 })
				var wg sync.WaitGroup
				for range 256 {
					st, err := sess.Open(ctx, protocol.StreamEvents)
					if err != nil {
						b.Fatal(err)
					}
					wg.Go(func() {
						_ = st.SetWriteDeadline(time.Now().Add(5 * time.Second))
						_, _ = st.Write(payload) // fails once the gateway resets the stream
					})
				}
				wg.Wait()
				time.Sleep(200 * time.Millisecond) // the last frames land
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MiB")
				sess.Close()
				waitFor(b, "unregistration", func() bool { return r.reg.Len() == 0 })
			}
		})
	}
}
