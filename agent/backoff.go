package agent

import (
	"math/rand/v2"
	"time"
)

// backoff yields redial delays: exponential from min, capped at max, with
// jitter over the upper half of the step, so a fleet of agents that lost
// the same control plane does not redial in lock-step, and a delay is
// never shorter than half the step (a refusing control plane is not
// hammered).
type backoff struct {
	min, max time.Duration
	attempt  int
	rand     func(n int64) int64 // uniform in [0, n); replaced in tests
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, rand: rand.Int64N}
}

// step is the un-jittered delay of the current attempt.
func (b *backoff) step() time.Duration {
	d := b.min
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// next returns the delay before the next attempt and counts the attempt.
func (b *backoff) next() time.Duration {
	d := b.step()
	if b.attempt < 62 {
		b.attempt++
	}
	half := d / 2
	return half + time.Duration(b.rand(int64(d-half)+1))
}

// reset starts over after a healthy session.
func (b *backoff) reset() { b.attempt = 0 }
