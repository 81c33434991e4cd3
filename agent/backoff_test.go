package agent

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	cases := []struct {
		name string
		rand func(int64) int64
	}{
		{"lowest jitter", func(int64) int64 { return 0 }},
		{"highest jitter", func(n int64) int64 { return n - 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackoff(time.Second, 10*time.Second)
			b.rand = tc.rand
			steps := []time.Duration{1, 2, 4, 8, 10, 10, 10}
			for i, s := range steps {
				step := s * time.Second
				d := b.next()
				if d < step/2 || d > step {
					t.Errorf("attempt %d: delay %v outside [%v, %v]", i, d, step/2, step)
				}
			}
			b.reset()
			if d := b.next(); d > time.Second {
				t.Errorf("after reset: %v, want at most the minimum", d)
			}
		})
	}
}

func TestBackoffManyAttemptsDoNotOverflow(t *testing.T) {
	b := newBackoff(time.Millisecond, time.Hour)
	for range 1000 {
		if d := b.next(); d <= 0 || d > time.Hour {
			t.Fatalf("delay %v", d)
		}
	}
}
