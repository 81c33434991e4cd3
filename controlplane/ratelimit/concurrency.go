package ratelimit

import (
	"sync"
	"sync/atomic"
)

// DefaultMaxConcurrentOriginates is how many originates may be in flight
// on one PBX at once. Each holds an AMI action and a channel being set up;
// Asterisk copes with far more calls than that, but not with hundreds of
// simultaneous Originate actions from one burst.
const DefaultMaxConcurrentOriginates = 10

// ConcurrencyLimiter caps in-flight operations per PBX. The zero value is
// ready to use with Max = DefaultMaxConcurrentOriginates; it is safe for
// concurrent use. Memory is proportional to the PBXs with operations in
// flight: a PBX's counter is dropped when its last operation ends.
type ConcurrencyLimiter struct {
	// Max operations in flight per PBX; zero or less means
	// DefaultMaxConcurrentOriginates. Set before first use.
	Max int

	mu    sync.Mutex
	inUse map[string]int
}

// TryAcquire takes a slot on pbx without waiting. On success the caller
// must call release exactly when the operation ends (calling it again is
// harmless). On failure the API answers 429 (or 503) at once rather than
// queueing in front of Asterisk.
func (c *ConcurrencyLimiter) TryAcquire(pbx string) (release func(), ok bool) {
	max := c.Max
	if max <= 0 {
		max = DefaultMaxConcurrentOriginates
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inUse[pbx] >= max {
		return nil, false
	}
	if c.inUse == nil {
		c.inUse = make(map[string]int)
	}
	c.inUse[pbx]++
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.inUse[pbx] <= 1 {
			delete(c.inUse, pbx)
		} else {
			c.inUse[pbx]--
		}
	}, true
}

// InUse reports the operations in flight on pbx (for metrics and tests).
func (c *ConcurrencyLimiter) InUse(pbx string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inUse[pbx]
}
