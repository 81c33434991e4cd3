package api_test

import (
	"context"
	"flag"
	"fmt"
	"github.com/switchboard-pbx/switchboard/protocol"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// benchServer is a control plane with limits off (the benchmark measures
// the path, not the limiter) and one PBX whose extension 150 is busy, so
// every call ends at once and the fake's channel model stays small.
func benchServer(b *testing.B, engine string) (*systemtest.Server, string) {
	b.Helper()
	s := systemtest.New(b, systemtest.Options{
		Engine: engine,
		Logger: slog.New(slog.DiscardHandler),
		Config: controlplane.Config{API: api.Config{
			RateLimit: ratelimit.Config{PerCredential: rate.Inf, PerEnterprise: rate.Inf},
		}},
	})
	s.Enterprise(b, "0367", "june")
	key := s.APIKey(b, "0367")
	p := s.AddPBX(b, "0367", systemtest.PBXOptions{MaxConcurrentOriginates: 10000, MaxConcurrentRequests: 10000})
	p.AMI.SetOutcome("150", amitest.Busy)
	return s, key
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // wall time per op says nothing here
}

// BenchmarkOriginate is POST /v1/calls end to end, one request at a time:
// HTTP → auth (API key lookup) → rate limit → PBX lookup → tunnel →
// real agent → AMI Originate on amitest → response, with the audit row
// stored before the reply.
//
//	go test -run '^$' -bench BenchmarkOriginate$ -benchtime 2000x ./controlplane/api/
func BenchmarkOriginate(b *testing.B) {
	for _, engine := range storetest.Engines {
		b.Run(engine, func(b *testing.B) {
			s, key := benchServer(b, engine)
			body := []byte(`{"from":"150","to":"+375296254070"}`)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				r, err := s.DoErr("POST", "/v1/calls", key, body)
				if err != nil || r.Status != 201 {
					b.Fatalf("%v %d %s", err, r.Status, r.Body)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
}

var loadRPS = flag.Int("load-rps", 1000, "request rate of BenchmarkOriginateLoad")

// BenchmarkOriginateLoad sends POST /v1/calls open-loop at a fixed rate
// (-load-rps=N, default 1,000 per second; b.N requests, so -benchtime 5000x
// is 5 s), measuring each latency from the request's scheduled time so a
// stall is not hidden by the sender slowing down. Client, control plane,
// agent, fake Asterisk and database all share this machine's cores.
//
//	go test -run '^$' -bench BenchmarkOriginateLoad -benchtime 5000x ./controlplane/api/
func BenchmarkOriginateLoad(b *testing.B) {
	const maxInFlight = 2048
	for _, engine := range storetest.Engines {
		b.Run(engine, func(b *testing.B) {
			s, key := benchServer(b, engine)
			body := []byte(`{"from":"150","to":"+375296254070"}`)
			lat := make([]time.Duration, b.N)
			var failed atomic.Int64
			var firstErr atomic.Value
			sem := make(chan struct{}, maxInFlight)
			var wg sync.WaitGroup
			interval := time.Second / time.Duration(*loadRPS)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					r, err := s.DoErr("POST", "/v1/calls", key, body)
					lat[i] = time.Since(due)
					if err != nil || r.Status != 201 {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %d %s", err, r.Status, r.Body))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr.Load())
			}
			reportLatency(b, lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}

// BenchmarkOriginateTunnelOnly is the part of BenchmarkOriginate below the
// API: fleet.Registry.Call → tunnel → agent → amitest, no HTTP, auth or
// store. The difference between the two is the API's own cost.
func BenchmarkOriginateTunnelOnly(b *testing.B) {
	s, _ := benchServer(b, "sqlite")
	agents := s.CP().Registry().List()
	if len(agents) != 1 {
		b.Fatalf("%d agents", len(agents))
	}
	id := agents[0].AgentID
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		var res protocol.OriginateResult
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		err := s.CP().Registry().Call(ctx, id, protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "+375296254070"}, &res)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
