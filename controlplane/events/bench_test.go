package events_test

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

var (
	benchRate = flag.Int("events.rate", 5000, "BenchmarkPipeline: offered load in events per second (4 events per call)")
	benchPBXs = flag.Int("events.pbxs", 1, "BenchmarkPipeline: PBXs (agents) sharing the load")
)

// BenchmarkPipeline measures events per second from the fake Asterisk
// through the agent, the tunnel, the gateway's store transaction (events,
// call history, outbox) and the hub to a WebSocket subscriber, and the
// latency of one event at that load: from the moment the agent's tracker
// derived it (the event's time) to the moment the subscriber decoded it.
// The load is offered at -events.rate (default 5,000/s, the goal)
// as calls of 4 events (started, answered, bridged, ended) spread over
// -events.pbxs PBXs of one enterprise (default 1); b.N is the number of
// calls.
//
//	go test -run '^$' -bench BenchmarkPipeline -benchtime 4000x ./controlplane/events/
func BenchmarkPipeline(b *testing.B) {
	for _, engine := range storetest.Engines {
		b.Run(engine, func(b *testing.B) {
			const perCall = 4
			pbxCount := *benchPBXs
			e := newEnv(b, envOptions{engine: engine, quiet: true})
			tn := e.tenant(b, "0367")
			var pbxs []*pbx
			for range pbxCount {
				pbxs = append(pbxs, e.addPBX(b, "0367"))
			}
			ws := e.mustDial(b, tn.key, "")
			ws.next(b) // stream.live
			want := b.N * perCall

			type sample struct {
				lat, toStore time.Duration
				at           time.Time
			}
			samples := make([]sample, 0, want)
			readDone := make(chan struct{})
			var readErr error
			go func() {
				defer close(readDone)
				for len(samples) < want {
					select {
					case m := <-ws.msgs:
						if m.Type == "gap" {
							readErr = fmt.Errorf("an agent lost %d events (its outbox overflowed): the pipeline fell behind the offered load", m.Lost)
							return
						}
						now := time.Now()
						samples = append(samples, sample{lat: now.Sub(m.Time), toStore: m.ReceivedAt.Sub(m.Time), at: now})
					case <-ws.done:
						readErr = ws.err
						return
					case <-time.After(30 * time.Second):
						readErr = fmt.Errorf("stalled after %d of %d events", len(samples), want)
						return
					}
				}
			}()

			interval := time.Duration(float64(time.Second) * perCall / float64(*benchRate))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, p := range pbxs {
				wg.Go(func() {
					// Each PBX offers its share, paced against the clock so a
					// slow iteration is caught up rather than stretching the run.
					for k := i; k < b.N; k += pbxCount {
						if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
							time.Sleep(d)
						}
						id, err := p.AMI.StartCall("150", "151")
						if err != nil {
							b.Error(err)
							return
						}
						if err := p.AMI.Hangup(id, 16); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			offered := time.Since(start)
			<-readDone
			b.StopTimer()
			if readErr != nil {
				b.Fatal(readErr)
			}
			elapsed := samples[len(samples)-1].at.Sub(start)
			lats := make([]time.Duration, len(samples))
			toStore := make([]time.Duration, len(samples))
			for i, s := range samples {
				lats[i], toStore[i] = s.lat, s.toStore
			}
			slices.Sort(toStore)
			slices.Sort(lats)
			q := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
			b.ReportMetric(float64(want)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(lats[len(lats)-1].Microseconds())/1000, "max_ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("agent to store transaction start: p50 %v p99 %v", toStore[len(toStore)/2], toStore[len(toStore)*99/100])
			b.Logf("%d events offered at %d/s over %v, all received by %v", want, *benchRate, offered.Round(time.Millisecond), elapsed.Round(time.Millisecond))
		})
	}
}
