package ratelimit

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestConcurrencyLimiter(t *testing.T) {
	tests := []struct {
		name string
		max  int
		want int
	}{
		{"explicit max", 3, 3},
		{"zero means default", 0, DefaultMaxConcurrentOriginates},
		{"negative means default", -5, DefaultMaxConcurrentOriginates},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &ConcurrencyLimiter{Max: tc.max}
			var releases []func()
			for i := range tc.want {
				rel, ok := c.TryAcquire("pbx-a")
				if !ok {
					t.Fatalf("slot %d refused", i)
				}
				releases = append(releases, rel)
			}
			if _, ok := c.TryAcquire("pbx-a"); ok {
				t.Fatal("slot beyond max granted")
			}
			if rel, ok := c.TryAcquire("pbx-b"); !ok {
				t.Fatal("another PBX refused")
			} else {
				rel()
			}
			releases[0]()
			releases[0]() // a second release must not free a second slot
			if got := c.InUse("pbx-a"); got != tc.want-1 {
				t.Fatalf("in use %d after one release, want %d", got, tc.want-1)
			}
			rel, ok := c.TryAcquire("pbx-a")
			if !ok {
				t.Fatal("freed slot not reusable")
			}
			if _, ok := c.TryAcquire("pbx-a"); ok {
				t.Fatal("double release freed an extra slot")
			}
			rel()
			for _, r := range releases[1:] {
				r()
			}
			if n := len(c.inUse); n != 0 {
				t.Fatalf("%d PBX counters left after all releases", n)
			}
		})
	}
}

func TestConcurrencyLimiterRace(t *testing.T) {
	c := &ConcurrencyLimiter{Max: 4}
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				rel, ok := c.TryAcquire("pbx")
				if !ok {
					continue
				}
				n := inFlight.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inFlight.Add(-1)
				rel()
			}
		})
	}
	wg.Wait()
	if peak.Load() > 4 {
		t.Fatalf("peak %d in flight, max 4", peak.Load())
	}
	if c.InUse("pbx") != 0 {
		t.Fatalf("%d still in use", c.InUse("pbx"))
	}
}
