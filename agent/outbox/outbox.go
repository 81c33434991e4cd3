package outbox

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// DefaultMaxPending bounds the unacknowledged events kept. A call makes a
// handful of events, so 10,000 covers minutes of a busy PBX with the
// control plane unreachable, at a few hundred bytes each.
const DefaultMaxPending = 10000

// minPending leaves room for a gap event and at least one real event.
const minPending = 2

// DefaultMaxEventBytes bounds one event's JSON encoding: a quarter of the
// agent's default batch (64 KiB), far above a real event (a few hundred
// bytes, a few KiB with every field at the agent's field limit).
const DefaultMaxEventBytes = 16 << 10

// MinMaxEventBytes leaves room for the gap event that replaces a larger
// one.
const MinMaxEventBytes = 1 << 10

// seqSlack is added to an event's measured size: it is measured with
// Seq 0, and a sequence number takes up to 20 digits.
const seqSlack = 19

// Config configures an Outbox.
type Config struct {
	// MaxPending bounds the events waiting for an acknowledgement, gap
	// events included; default DefaultMaxPending, at least 2.
	MaxPending int
	// MaxEventBytes bounds one event's JSON encoding. A larger event is
	// replaced, under its sequence number, by a gap event that names it
	// (Dropped, Reason): it could never be sent, and keeping it would
	// stop every later event behind it. Default DefaultMaxEventBytes, at
	// least MinMaxEventBytes.
	MaxEventBytes int
	// Now stamps gap events; nil means time.Now.
	Now func() time.Time
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	if c.MaxPending != 0 && c.MaxPending < minPending {
		return fmt.Errorf("invalid outbox config: MaxPending %d is below %d (a gap event and one event)", c.MaxPending, minPending)
	}
	if c.MaxEventBytes != 0 && c.MaxEventBytes < MinMaxEventBytes {
		return fmt.Errorf("invalid outbox config: MaxEventBytes %d is below %d (room for the gap event that replaces a larger event)", c.MaxEventBytes, MinMaxEventBytes)
	}
	return nil
}

// Outbox is the bounded buffer of numbered events. It is safe for
// concurrent use: the AMI consumer appends while the events stream sends
// and the acknowledgements come back.
type Outbox struct {
	max      int
	maxEvent int
	now      func() time.Time

	mu sync.Mutex
	// buf holds the pending events in sequence order with no holes:
	// buf[i].Seq == acked+1+i; sizes[i] is buf[i]'s encoded size (an
	// upper bound: see seqSlack).
	buf     []protocol.Event
	sizes   []int
	next    uint64 // sequence of the next event
	acked   uint64 // highest acknowledged sequence
	lost    uint64 // events refused since the last gap event
	stats   Stats
	rebased bool // numbering agreed with a control plane (see Rebase)
	changed chan struct{}
}

// Stats describes the outbox for status reports and tests.
type Stats struct {
	Pending   int    // events waiting for an acknowledgement
	NextSeq   uint64 // sequence the next event will get
	LastAcked uint64 // highest acknowledged sequence
	Lost      uint64 // events lost to overflow since the start
	Gaps      uint64 // gap events emitted since the start
	// Truncated counts events appended with fields cut to the field
	// limit (Event.Truncated); TooLarge counts events replaced by a gap
	// event because their encoding was over the event limit.
	Truncated uint64
	TooLarge  uint64
}

// New returns an empty outbox numbering from 1.
func New(cfg Config) (*Outbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxEventBytes == 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Outbox{
		max:      cfg.MaxPending,
		maxEvent: cfg.MaxEventBytes,
		now:      cfg.Now,
		next:     1,
		changed:  make(chan struct{}),
	}, nil
}

// Append numbers ev (its Seq is overwritten) and keeps it until it is
// acknowledged. When the outbox is full the event is counted as lost and
// Append returns false; a gap event reporting the count is appended as
// soon as there is room, before any later event.
func (o *Outbox) Append(ev protocol.Event) (seq uint64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushGap()
	if len(o.buf) >= o.max {
		o.lost++
		o.stats.Lost++
		return 0, false
	}
	seq = o.push(ev)
	o.signal()
	return seq, true
}

// push appends ev with the next sequence, replacing it by a gap event
// when it is too large. Callers hold o.mu and have checked there is room.
func (o *Outbox) push(ev protocol.Event) uint64 {
	if len(ev.Truncated) > 0 {
		o.stats.Truncated++
	}
	size := encodedSize(ev)
	if size > o.maxEvent {
		ev, size = o.tooLarge(ev, size, o.maxEvent)
	}
	ev.Seq = o.next
	o.next++
	o.buf = append(o.buf, ev)
	o.sizes = append(o.sizes, size)
	return ev.Seq
}

// encodedSize is an upper bound of ev's JSON encoding in a batch, with
// any sequence number.
func encodedSize(ev protocol.Event) int {
	ev.Seq = 0
	b, err := json.Marshal(ev)
	if err != nil {
		return 0 // cannot happen: events hold strings, numbers and times
	}
	return len(b) + seqSlack
}

// maxNamedBytes bounds the dropped event's call id and type in the gap
// event that replaces it.
const maxNamedBytes = 128

// tooLarge returns the gap event that stands for ev, which encodes to
// size bytes, over limit. Callers hold o.mu.
func (o *Outbox) tooLarge(ev protocol.Event, size, limit int) (protocol.Event, int) {
	o.stats.TooLarge++
	o.stats.Gaps++
	gap := protocol.Event{
		Seq: ev.Seq, Type: protocol.EventGap, Time: ev.Time, Lost: 1,
		CallID: cut(ev.CallID, maxNamedBytes), Dropped: cut(ev.Type, maxNamedBytes),
		Reason: fmt.Sprintf("event of %d bytes is over the %d-byte limit of one event", size, limit),
	}
	if gap.Time.IsZero() {
		gap.Time = o.now().UTC()
	}
	return gap, encodedSize(gap)
}

// cut bounds a name copied into a gap event; its bytes need not end on a
// character boundary, JSON encoding replaces a split character.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// flushGap appends the gap event for events lost so far, if there are
// any and there is room. It takes the sequence number the first lost
// event would have had: lost events were never numbered.
func (o *Outbox) flushGap() {
	if o.lost == 0 || len(o.buf) >= o.max {
		return
	}
	o.push(protocol.Event{Type: protocol.EventGap, Time: o.now().UTC(), Lost: o.lost})
	o.lost = 0
	o.stats.Gaps++
	o.signal()
}

// signal wakes everyone waiting on Changed. Callers hold o.mu.
func (o *Outbox) signal() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// Changed returns a channel closed when events are appended after the
// call. Take it BEFORE calling Batch so an append in between is not
// missed.
func (o *Outbox) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// Ack drops every event up to and including seq and returns how many were
// dropped. An old or repeated acknowledgement changes nothing; one beyond
// the last numbered event acknowledges everything numbered so far.
func (o *Outbox) Ack(seq uint64) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ack(seq)
}

func (o *Outbox) ack(seq uint64) int {
	if seq <= o.acked {
		return 0
	}
	seq = min(seq, o.next-1)
	n := int(seq - o.acked)
	clear(o.buf[:n]) // let the dropped events' strings go
	o.buf = o.buf[n:]
	o.sizes = o.sizes[n:]
	o.acked = seq
	o.flushGap()
	return n
}

// BatchOverhead is the bytes of an EventBatch frame besides its events:
// the length prefix, `{"events":[` and `]}`; each event after the first
// adds a comma.
const BatchOverhead = 4 + len(`{"events":[]}`)

// Batch returns copies of the events after `after`, in order, as many as
// fit in one EventBatch frame of at most maxBytes bytes (BatchOverhead
// and commas included) and at most maxEvents (<= 0: no count limit), with
// the frame's size. It returns at least one event when one is pending,
// whatever its size: callers keep events below their limit with Shrink.
func (o *Outbox) Batch(after uint64, maxEvents, maxBytes int) ([]protocol.Event, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	after = maxU(after, o.acked)
	start := int(after - o.acked)
	if start >= len(o.buf) {
		return nil, 0
	}
	end, total := start, BatchOverhead-1
	for end < len(o.buf) && (maxEvents <= 0 || end-start < maxEvents) {
		next := total + 1 + o.sizes[end]
		if end > start && next > maxBytes {
			break
		}
		total = next
		end++
	}
	return append([]protocol.Event(nil), o.buf[start:end]...), total
}

// Shrink replaces every pending event after `after` whose encoding is over
// maxEventBytes by a gap event naming it, keeping its sequence number, and
// returns how many it replaced. The agent calls it when the control plane
// refused a frame (protocol.Ack.Refused): events that can never fit its
// limit must not block the ones behind them.
func (o *Outbox) Shrink(after uint64, maxEventBytes int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	maxEventBytes = max(maxEventBytes, MinMaxEventBytes)
	after = maxU(after, o.acked)
	n := 0
	for i := int(after - o.acked); i < len(o.buf); i++ {
		if o.sizes[i] > maxEventBytes {
			o.buf[i], o.sizes[i] = o.tooLarge(o.buf[i], o.sizes[i], maxEventBytes)
			n++
		}
	}
	return n
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// Rebase aligns the outbox with the control plane's view at the start of
// a session: lastAcked is Welcome.LastAckedSeq, the highest sequence the
// control plane has stored for this agent. It returns the sequence after
// which events must be (re)sent and whether pending events were
// renumbered.
//
// The control plane stores events in sequence order and treats a sequence
// it has already stored as a duplicate. Sequence numbers therefore must
// never go backwards from its point of view, across agent restarts too:
//
//   - On the first session of this process the numbering is only
//     provisional. A restarted agent numbers from 1 again, while the
//     control plane may have stored up to, say, 5,000 from the previous
//     process: events 1..N would be discarded as duplicates. So the first
//     Rebase always renumbers every pending event to follow lastAcked —
//     they are all new to the control plane, since this process has never
//     delivered any of them.
//   - Later sessions of the same process share the numbering with the
//     control plane: events up to lastAcked are acknowledged, the rest
//     resent with their numbers unchanged, so a resend is recognisable.
//   - If the control plane reports more than this process ever numbered
//     (it talked to another instance with the same token, or its own
//     store is ahead), pending events are renumbered after lastAcked as on
//     the first session, for the same reason.
//   - If it reports less than this process already saw acknowledged (its
//     store lost rows), those events are gone from here too; the pending
//     ones are resent with their numbers, and the control plane sees the
//     hole in the sequence.
func (o *Outbox) Rebase(lastAcked uint64) (resumeAfter uint64, renumbered bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.rebased || lastAcked >= o.next {
		o.rebased = true
		for i := range o.buf {
			o.buf[i].Seq = lastAcked + 1 + uint64(i)
		}
		o.acked = lastAcked
		o.next = lastAcked + 1 + uint64(len(o.buf))
		return o.acked, true
	}
	o.ack(lastAcked)
	return o.acked, false
}

// Stats returns the current counters.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.Pending = len(o.buf)
	s.NextSeq = o.next
	s.LastAcked = o.acked
	return s
}

// Len is the number of events waiting for an acknowledgement.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}
