package gateway_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

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
