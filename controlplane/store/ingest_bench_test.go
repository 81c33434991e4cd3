package store_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// BenchmarkStoreAgentEvents: one agent batch per iteration (1 or 50 whole
// calls of 2 events) with its call history rows, with and without one
// webhook's outbox rows. ns/op includes the commit's fsync; cpu-µs/op is
// the CPU time the process used per batch (the database server's, on
// PostgreSQL, is not counted).
func BenchmarkStoreAgentEvents(b *testing.B) {
	storetest.BenchEachEngine(b, func(b *testing.B, s *store.Store) {
		runs := 0
		for _, bc := range []struct{ hooks, calls int }{{0, 1}, {1, 1}, {0, 50}, {1, 50}} {
			hooks := bc.hooks
			b.Run(fmt.Sprintf("webhooks=%d/events=%d", hooks, 2*bc.calls), func(b *testing.B) {
				ctx := context.Background()
				runs++ // b.Run calls this once per b.N it tries
				num := fmt.Sprintf("%d", 100+runs)
				ent, err := s.CreateEnterprise(ctx, num, "bench")
				if err != nil {
					b.Fatal(err)
				}
				ag, _, err := s.CreateAgent(ctx, num, "pbx", "")
				if err != nil {
					b.Fatal(err)
				}
				for range hooks {
					if _, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: ent.ID, URL: "http://crm/"}); err != nil {
						b.Fatal(err)
					}
				}
				f := &fixture{s: s, nextSeq: map[string]uint64{}}
				b.ResetTimer()
				cpu0 := processCPU()
				for i := range b.N {
					var evs []protocol.Event
					for c := range bc.calls {
						evs = append(evs, busyCall(fmt.Sprintf("c%d-%d", i, c), "150", "160", i)...)
					}
					for j := range evs {
						f.nextSeq[ag.ID]++
						evs[j].Seq = f.nextSeq[ag.ID]
					}
					if _, err := s.StoreAgentEvents(ctx, ag.ID, ent.ID, evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(2*bc.calls*b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	})
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
