package ops

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// BenchmarkRequestsDuringDTMF measures a Ping request through the handler
// while DTMF digits of 100 ms play back to back on the same PBX: on the
// agent's second AMI session (as it runs), and, for comparison, on the
// session every other request uses, where each request waits behind the
// digit being played (README item 29).
//
//	go test -run '^$' -bench RequestsDuringDTMF -benchtime 200x ./agent/ops/
func BenchmarkRequestsDuringDTMF(b *testing.B) {
	for _, bc := range []struct {
		name   string
		shared bool
	}{{"second_session", false}, {"shared_session", true}} {
		b.Run(bc.name, func(b *testing.B) {
			p := startCallPBX(b, bc.shared, nil)
			id := p.call(b, false, "150", "+375296254070")
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() {
				for ctx.Err() == nil {
					p.do(protocol.OpDTMF, protocol.DTMFArgs{CallID: id, Party: "150", Digits: "1234567890", DurationMS: 100}, 5*time.Second)
				}
			})
			waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := p.srv.WaitAction(waitCtx, "PlayDTMF"); err != nil {
				b.Fatal(err)
			}
			waitCancel()
			var worst time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if resp := p.do(protocol.OpPing, nil, 5*time.Second); resp.Error != nil {
					b.Fatal(resp.Error)
				}
				worst = max(worst, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
			cancel()
			wg.Wait()
		})
	}
}
