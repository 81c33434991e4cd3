package ami

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// Synthetic events the client delivers to every subscription, in order
// with Asterisk's events.
const (
	// EventConnected follows every successful login (header AMIVersion):
	// the owner resyncs its state, since events were missed while down.
	EventConnected = "SwitchboardConnected"
	// EventDisconnected: the connection was lost (header Error).
	EventDisconnected = "SwitchboardDisconnected"
	// EventDropped (header Count) stands where Count events were dropped
	// because this subscription's buffer was full.
	EventDropped = "SwitchboardDropped"
)

func synthetic(event, key, value string) *Message {
	return &Message{Headers: []Header{{"Event", event}, {key, value}}}
}

// Subscription receives every event (not responses, not list items). Its
// buffer is its own: when full, events are dropped and counted, and an
// EventDropped message takes their place as soon as the reader of C makes
// room. Messages are shared between subscriptions: Clone before changing.
type Subscription struct {
	c    *Client
	out  chan *Message
	wake chan struct{}
	done chan struct{}
	exit chan struct{}
	once sync.Once

	mu   sync.Mutex
	ring []subEntry
	head int
	n    int

	dropped atomic.Uint64
}

type subEntry struct {
	m *Message
	// droppedAfter counts events dropped right after m: the pump reports
	// them in place, after delivering m.
	droppedAfter uint64
}

// Subscribe returns a subscription with a buffer of bufferSize events
// (DefaultSubscriptionBuffer if <= 0). Close it when done; Client.Close
// closes every subscription (C is then closed).
func (c *Client) Subscribe(bufferSize int) *Subscription {
	if bufferSize <= 0 {
		bufferSize = DefaultSubscriptionBuffer
	}
	s := &Subscription{
		c:    c,
		out:  make(chan *Message),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		exit: make(chan struct{}),
		ring: make([]subEntry, bufferSize),
	}
	c.subMu.Lock()
	if c.closeCtx.Err() != nil {
		c.subMu.Unlock()
		close(s.done)
		close(s.out)
		close(s.exit)
		return s
	}
	old := *c.subs.Load()
	subs := make([]*Subscription, len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	c.subs.Store(&subs)
	c.subMu.Unlock()
	go s.pump()
	return s
}

// C delivers the events. It is closed after Close.
func (s *Subscription) C() <-chan *Message { return s.out }

// Dropped is the total number of events dropped for this subscription.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops delivery and waits for the subscription's goroutine.
func (s *Subscription) Close() {
	c := s.c
	c.subMu.Lock()
	old := *c.subs.Load()
	subs := make([]*Subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	c.subs.Store(&subs)
	c.subMu.Unlock()
	s.stop()
}

func (s *Subscription) stop() {
	s.once.Do(func() { close(s.done) })
	<-s.exit
}

// dispatch delivers m to every subscription without ever blocking. It is
// called by one goroutine at a time (the session's reader, or serve around
// it), which keeps every subscription's order equal to the wire order.
func (c *Client) dispatch(m *Message) {
	for _, s := range *c.subs.Load() {
		s.push(m)
	}
}

func (s *Subscription) push(m *Message) {
	s.mu.Lock()
	if s.n == len(s.ring) {
		s.ring[(s.head+s.n-1)%len(s.ring)].droppedAfter++
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	s.ring[(s.head+s.n)%len(s.ring)] = subEntry{m: m}
	s.n++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump moves events from the ring to C, so the reader never waits for a
// subscriber.
func (s *Subscription) pump() {
	defer close(s.exit)
	defer close(s.out)
	for {
		s.mu.Lock()
		if s.n == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		// Once out of the ring no drop can attach to this entry, so its
		// count is final here.
		e := s.ring[s.head]
		s.ring[s.head] = subEntry{}
		s.head = (s.head + 1) % len(s.ring)
		s.n--
		s.mu.Unlock()
		if !s.send(e.m) {
			return
		}
		if k := e.droppedAfter; k > 0 && !s.send(synthetic(EventDropped, "Count", strconv.FormatUint(k, 10))) {
			return
		}
	}
}

func (s *Subscription) send(m *Message) bool {
	select {
	case s.out <- m:
		return true
	case <-s.done:
		return false
	}
}
