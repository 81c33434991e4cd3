package ratelimit

import (
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// countAllowed takes tokens until the first refusal.
func countAllowed(l *Limiter, cred string) int {
	n := 0
	for {
		if ok, _ := l.Allow(cred, 0); !ok {
			return n
		}
		n++
	}
}

// TestShare: with N live replicas each bucket admits 1/N of the rate and
// burst, and follows N as replicas come and go.
func TestShare(t *testing.T) {
	var share atomic.Int32
	share.Store(3)
	l, clk := newLimiter(t, Config{PerCredential: 30, CredentialBurst: 30, PerEnterprise: rate.Inf,
		Share: func() int { return int(share.Load()) }})
	if got := countAllowed(l, "key:a"); got != 10 {
		t.Fatalf("burst with 3 replicas = %d, want 10", got)
	}
	clk.Advance(time.Second) // 10 tokens at 30/3 per second
	if got := countAllowed(l, "key:a"); got != 10 {
		t.Fatalf("after a second with 3 replicas = %d, want 10", got)
	}
	// Two replicas left: each admits half, from the next request (what
	// was accrued before stays accrued at the old rate).
	share.Store(2)
	countAllowed(l, "key:a")
	clk.Advance(time.Second)
	if got := countAllowed(l, "key:a"); got != 15 {
		t.Fatalf("after a second with 2 replicas = %d, want 15", got)
	}
	// A share below 1 counts as one replica.
	share.Store(0)
	clk.Advance(2 * time.Second)
	if got := countAllowed(l, "key:b"); got != 30 {
		t.Fatalf("share 0: burst = %d, want 30", got)
	}
}
