package events

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors of subscriptions.
var (
	// ErrSlowSubscriber: the subscriber's buffer was full when a batch
	// arrived; the subscription is over (its queue is dropped).
	ErrSlowSubscriber = errors.New("slow subscriber: buffer full")
	// ErrTooManySubscribers: the process or the enterprise has as many
	// subscribers as allowed.
	ErrTooManySubscribers = errors.New("too many subscribers")
	// ErrSubscriptionClosed: Close was called.
	ErrSubscriptionClosed = errors.New("subscription closed")
)

// Item is one stored event as subscribers get it, encoded once for all.
type Item struct {
	Seq     int64
	AgentID string
	Type    string
	JSON    []byte // the Event envelope (see Event)
}

// Batch is one stored agent batch: its events hold the consecutive
// enterprise sequences First..Last. A subscriber's copy keeps First and
// Last but only the items its filter matches, so it can tell a sequence
// it filtered out from one it never received.
type Batch struct {
	EnterpriseID int64
	First, Last  int64
	Items        []Item
}

// Filter selects the events a subscriber wants. The zero Filter wants
// everything.
type Filter struct {
	AgentID string   // "" = every PBX
	Types   []string // empty = every type
}

// Match reports whether the filter wants an event.
func (f Filter) Match(agentID, typ string) bool {
	if f.AgentID != "" && f.AgentID != agentID {
		return false
	}
	return len(f.Types) == 0 || slices.Contains(f.Types, typ)
}

// Broker delivers published batches to the subscribers of their
// enterprise. Hub is the in-process implementation; the cluster package's
// (PostgreSQL LISTEN/NOTIFY carrying enterprise and sequence range, the
// events read back from the store by each replica with subscribers)
// wraps a Hub. Publish must never block on a subscriber.
type Broker interface {
	Publish(b Batch)
	Subscribe(enterpriseID int64, f Filter, buffer int) (*Subscription, error)
}

// Hub is an in-process Broker. It is safe for concurrent use.
type Hub struct {
	maxTotal, maxPerEnterprise int

	mu    sync.RWMutex
	subs  map[int64]map[*Subscription]struct{}
	total int
}

// NewHub returns a Hub admitting at most maxTotal subscribers, and
// maxPerEnterprise per enterprise (0: no limit).
func NewHub(maxTotal, maxPerEnterprise int) *Hub {
	return &Hub{maxTotal: maxTotal, maxPerEnterprise: maxPerEnterprise, subs: map[int64]map[*Subscription]struct{}{}}
}

// Publish offers b to every subscriber of its enterprise. It holds only a
// read lock and each subscriber's own short lock: a slow subscriber is
// dropped, never waited for.
func (h *Hub) Publish(b Batch) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[b.EnterpriseID] {
		s.offer(b)
	}
}

// Subscribe registers a subscriber whose queue holds at most buffer
// events (an empty batch counts as one; a single batch larger than buffer
// is admitted into an empty queue).
func (h *Hub) Subscribe(enterpriseID int64, f Filter, buffer int) (*Subscription, error) {
	if buffer <= 0 {
		return nil, fmt.Errorf("subscribe: buffer must be positive, got %d", buffer)
	}
	s := &Subscription{enterprise: enterpriseID, filter: f, max: buffer, ready: make(chan struct{}, 1)}
	s.unsubscribe = func() { h.remove(s) }
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[enterpriseID]
	if h.maxTotal > 0 && h.total >= h.maxTotal {
		return nil, fmt.Errorf("%w: %d in this process", ErrTooManySubscribers, h.total)
	}
	if h.maxPerEnterprise > 0 && len(set) >= h.maxPerEnterprise {
		return nil, fmt.Errorf("%w: %d for this enterprise", ErrTooManySubscribers, len(set))
	}
	if set == nil {
		set = map[*Subscription]struct{}{}
		h.subs[enterpriseID] = set
	}
	set[s] = struct{}{}
	h.total++
	return s, nil
}

// Subscribed reports whether the enterprise has subscribers here (a
// broker spares the store reads of other replicas' batches nobody here
// wants).
func (h *Hub) Subscribed(enterpriseID int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[enterpriseID]) > 0
}

// Enterprises lists the enterprises with subscribers here.
func (h *Hub) Enterprises() []int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]int64, 0, len(h.subs))
	for id := range h.subs {
		out = append(out, id)
	}
	return out
}

// Len is the number of subscribers (for metrics and tests).
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.total
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[s.enterprise]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	h.total--
	if len(set) == 0 {
		delete(h.subs, s.enterprise)
	}
}

// Subscription is one subscriber's bounded queue. The broker fills it
// with offer; its owner drains it with Take.
type Subscription struct {
	enterprise  int64
	filter      Filter
	max         int
	unsubscribe func()
	ready       chan struct{} // a token when the queue went non-empty or failed

	mu      sync.Mutex
	queue   []Batch
	queued  int
	dropped int // events queued or offered when the subscriber was found slow
	err     error
	closed  sync.Once
}

// Ready receives when Take has something to return.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns every queued batch, oldest first, or the error that ended
// the subscription (ErrSlowSubscriber).
func (s *Subscription) Take() ([]Batch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	q := s.queue
	s.queue, s.queued = nil, 0
	return q, nil
}

// Err is the error that ended the subscription, if any.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Dropped is how many events were queued or offered when the
// subscription ended as slow (0 otherwise).
func (s *Subscription) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close unsubscribes. Safe to call more than once.
func (s *Subscription) Close() {
	s.closed.Do(func() {
		s.unsubscribe()
		s.mu.Lock()
		if s.err == nil {
			s.err = ErrSubscriptionClosed
		}
		s.queue = nil
		s.mu.Unlock()
	})
}

// offer queues the part of b the filter wants. Runs on the publisher's
// goroutine: it must not block.
func (s *Subscription) offer(b Batch) {
	var items []Item
	for _, it := range b.Items {
		if s.filter.Match(it.AgentID, it.Type) {
			items = append(items, it)
		}
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if len(items) == 0 && len(s.queue) > 0 {
		// Consecutive batches the filter emptied cost one slot together.
		if tail := &s.queue[len(s.queue)-1]; len(tail.Items) == 0 && tail.Last+1 == b.First {
			tail.Last = b.Last
			s.mu.Unlock()
			return
		}
	}
	cost := max(1, len(items))
	// One batch is always admitted into an empty queue, however large:
	// a batch arrives at once, so only falling behind is slowness.
	if s.queued > 0 && s.queued+cost > s.max {
		s.err = ErrSlowSubscriber
		s.dropped = s.queued + len(items)
		s.queue, s.queued = nil, 0
	} else {
		s.queue = append(s.queue, Batch{EnterpriseID: b.EnterpriseID, First: b.First, Last: b.Last, Items: items})
		s.queued += cost
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
