package events

import (
	"context"
	"sync"
)

// replaySlots bounds the store reads of event replays (a stream catching
// up from after=, a polling page) that one enterprise runs at once. A
// tenant that opens a hundred streams from after=0 queues behind its own
// replays instead of taking the store and the CPU from every other
// tenant's requests.
type replaySlots struct {
	per int

	mu    sync.Mutex
	slots map[int64]chan struct{}
	users map[int64]int
}

func newReplaySlots(per int) *replaySlots {
	return &replaySlots{per: per, slots: map[int64]chan struct{}{}, users: map[int64]int{}}
}

// acquire waits for one of the enterprise's slots (or ctx); waited says
// whether it had to queue.
func (r *replaySlots) acquire(ctx context.Context, enterpriseID int64) (release func(), waited bool, err error) {
	r.mu.Lock()
	ch, ok := r.slots[enterpriseID]
	if !ok {
		ch = make(chan struct{}, r.per)
		r.slots[enterpriseID] = ch
	}
	r.users[enterpriseID]++
	r.mu.Unlock()
	done := func() {
		r.mu.Lock()
		if r.users[enterpriseID]--; r.users[enterpriseID] == 0 {
			delete(r.users, enterpriseID)
			delete(r.slots, enterpriseID)
		}
		r.mu.Unlock()
	}
	select {
	case ch <- struct{}{}:
		return func() { <-ch; done() }, false, nil
	default:
	}
	select {
	case ch <- struct{}{}:
		return func() { <-ch; done() }, true, nil
	case <-ctx.Done():
		done()
		return nil, true, ctx.Err()
	}
}

// readPage reads and encodes one page of stored events under one of the
// enterprise's replay slots.
func (s *Service) readPage(ctx context.Context, enterpriseID int64, read func(context.Context) error) error {
	release, waited, err := s.replays.acquire(ctx, enterpriseID)
	if waited {
		s.cfg.Observer.ReplayWaited()
	}
	if err != nil {
		return err
	}
	defer release()
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	return read(sctx)
}
