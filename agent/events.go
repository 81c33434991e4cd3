package agent

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/agent/outbox"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// StreamStats counts what the events stream did since the agent started
// (metrics).
type StreamStats struct {
	// FramesRefused counts frames the control plane refused as too large
	// (protocol.Ack.Refused); the events were resent in smaller frames.
	FramesRefused uint64
	// AckWaits counts the times a frame waited because MaxInFlightBytes
	// were unacknowledged: the control plane was holding back (its ingest
	// rate limit, or its store failing).
	AckWaits uint64
}

// StreamStats returns the events stream's counters.
func (a *Agent) StreamStats() StreamStats {
	return StreamStats{FramesRefused: a.framesRefused.Load(), AckWaits: a.ackWaits.Load()}
}

// flow is the state one events stream's sender and ack reader share: the
// frames in flight and a refusal to act on.
type flow struct {
	mu       sync.Mutex
	frames   []sentFrame // sent, not yet acknowledged, in order
	inFlight int         // their bytes
	refused  *protocol.Refusal
	rewindTo uint64 // with refused: the acknowledged sequence to resend after
	sentMax  uint64 // highest sequence sent this session
	kick     chan struct{}
}

type sentFrame struct {
	last  uint64
	bytes int
}

func newFlow(resumeAfter uint64) *flow {
	return &flow{sentMax: resumeAfter, kick: make(chan struct{}, 1)}
}

func (f *flow) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// sent records a frame about to be written: the ack may come back before
// the write returns.
func (f *flow) sent(last uint64, bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, sentFrame{last, bytes})
	f.inFlight += bytes
	f.sentMax = max(f.sentMax, last)
}

// room reports whether a frame of n bytes may be sent now. One frame may
// always be in flight, whatever its size.
func (f *flow) room(n, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inFlight == 0 || f.inFlight+n <= limit
}

// ack records an acknowledgement and returns the sequence the outbox may
// drop up to: an ack can only cover what this session sent.
func (f *flow) ack(a protocol.Ack) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := min(a.Seq, f.sentMax)
	i := 0
	for i < len(f.frames) && f.frames[i].last <= seq {
		f.inFlight -= f.frames[i].bytes
		i++
	}
	f.frames = f.frames[i:]
	if a.Refused != nil {
		// The control plane ignores every frame after the refused one
		// until the events after seq come again.
		f.frames, f.inFlight = nil, 0
		r := *a.Refused
		f.refused, f.rewindTo = &r, seq
	}
	f.wake()
	return seq
}

// takeRefusal returns a refusal to act on, once.
func (f *flow) takeRefusal() (*protocol.Refusal, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.refused
	f.refused = nil
	return r, f.rewindTo
}

// streamEvents opens the events stream and sends every pending event after
// resumeAfter, then new ones as they come, while acknowledgements come
// back on the same stream. At most MaxInFlightBytes are unacknowledged.
func (a *Agent) streamEvents(ctx context.Context, sess *tunnel.Session, resumeAfter uint64) error {
	octx, cancel := context.WithTimeout(ctx, a.cfg.HelloTimeout)
	st, err := sess.Open(octx, protocol.StreamEvents)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer st.Close()
	fl := newFlow(resumeAfter)
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() { _ = st.Close() })
	defer stop()
	g.Go(func() error {
		for {
			var ack protocol.Ack
			if err := protocol.ReadFrame(st, &ack, 0); err != nil {
				if gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("read ack: %w", err)
			}
			a.outbox.Ack(fl.ack(ack))
		}
	})
	g.Go(func() error { return a.sendEvents(gctx, st, fl, resumeAfter) })
	return g.Wait()
}

// sendEvents writes event frames: batches cut by count and bytes, sent
// while the frames in flight leave room.
func (a *Agent) sendEvents(ctx context.Context, st net.Conn, fl *flow, after uint64) error {
	limit := a.cfg.MaxBatchBytes
	for {
		changed := a.outbox.Changed()
		if r, rewind := fl.takeRefusal(); r != nil {
			after, limit = rewind, a.refused(*r, rewind, limit)
		}
		batch, n := a.outbox.Batch(after, a.cfg.MaxEventsPerBatch, limit)
		var wait <-chan struct{}
		switch {
		case len(batch) == 0:
			wait = changed
		case n > limit && a.outbox.Shrink(after, limit-outbox.BatchOverhead) > 0:
			// One event was over this session's limit (lowered by a
			// refusal): it is a gap event now.
			continue
		case !fl.room(n, a.cfg.MaxInFlightBytes):
			a.ackWaits.Add(1)
		default:
			last := batch[len(batch)-1].Seq
			fl.sent(last, n)
			after = last
			_ = st.SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout))
			if err := protocol.WriteFrame(st, protocol.EventBatch{Events: batch}); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("send events: %w", err)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wait:
		case <-fl.kick:
		}
	}
}

// refused acts on the control plane's refusal of a frame: later frames of
// this session fit its limit, and pending events that can never fit it
// are replaced by gap events naming them. It returns the new batch limit.
func (a *Agent) refused(r protocol.Refusal, after uint64, limit int) int {
	a.framesRefused.Add(1)
	// MaxBytes bounds the frame's body; ours count the length prefix too.
	newLimit := min(limit, max(r.MaxBytes, minBatchBytes))
	replaced := a.outbox.Shrink(after, min(a.cfg.maxEventBytes(), newLimit-outbox.BatchOverhead))
	a.tlog.Warn("control plane refused an events frame as too large; resending in smaller frames",
		"frame_bytes", r.FrameBytes, "control_plane_max_bytes", r.MaxBytes, "batch_bytes", newLimit,
		"events_replaced_by_gaps", replaced, "resend_after", after)
	return newLimit
}
