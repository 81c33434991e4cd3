package ami

import (
	"math/rand/v2"
	"time"
)

// backoff yields reconnect delays: exponential from min, capped at max,
// with full jitter over [min, cap] so a fleet of agents that lost the same
// Asterisk does not redial in lock-step, and never below min so a PBX that
// refuses us is not hammered.
type backoff struct {
	min, max time.Duration
	attempt  int
	// rand returns a uniform value in [0, n); replaced in tests.
	rand func(n int64) int64
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, rand: rand.Int64N}
}

// next returns the delay before the next attempt and counts the attempt.
func (b *backoff) next() time.Duration {
	ceil := b.min
	for i := 0; i < b.attempt && ceil < b.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.max)
	if b.attempt < 62 {
		b.attempt++
	}
	if ceil <= b.min {
		return b.min
	}
	return b.min + time.Duration(b.rand(int64(ceil-b.min)+1))
}

// reset starts over after a healthy session.
func (b *backoff) reset() { b.attempt = 0 }
