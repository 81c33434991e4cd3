package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is a settable time source for Store.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
