package amitest

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler runs delayed steps of the channel model (ringing, no-answer
// timeouts, ChanSpy attach) on one goroutine per Server, instead of a
// goroutine or timer per channel: thousands of fake PBXs in a load test
// cost one goroutine each. Steps run with Server.mu held, in time order.
type scheduler struct {
	mu    sync.Mutex
	q     taskHeap
	seq   uint64
	wake  chan struct{}
	timer *time.Timer
}

type task struct {
	at  time.Time
	seq uint64 // FIFO among tasks due at the same instant
	fn  func()
}

type taskHeap []task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = task{}
	*h = old[:len(old)-1]
	return t
}

func (s *scheduler) init() {
	s.wake = make(chan struct{}, 1)
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
}

// after runs fn (with the Server lock held) once d has passed.
func (s *scheduler) after(d time.Duration, fn func()) {
	s.mu.Lock()
	s.seq++
	heap.Push(&s.q, task{at: time.Now().Add(d), seq: s.seq, fn: fn})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run(done <-chan struct{}, lock sync.Locker) {
	defer s.timer.Stop()
	for {
		s.mu.Lock()
		var due []func()
		now := time.Now()
		for s.q.Len() > 0 && !s.q[0].at.After(now) {
			due = append(due, heap.Pop(&s.q).(task).fn)
		}
		var wait time.Duration = -1
		if s.q.Len() > 0 {
			wait = s.q[0].at.Sub(now)
		}
		s.mu.Unlock()
		if len(due) > 0 {
			lock.Lock()
			for _, fn := range due {
				fn()
			}
			lock.Unlock()
			continue
		}
		if wait >= 0 {
			s.timer.Reset(wait)
		}
		select {
		case <-done:
			return
		case <-s.wake:
			s.timer.Stop()
		case <-s.timer.C:
		}
	}
}
