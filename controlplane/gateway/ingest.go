package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// ingestor reads one agent's events stream: it stores each batch, then
// acknowledges its last sequence. A batch is acknowledged only once
// stored, so the agent keeps it until then and nothing accepted is lost.
// Three things hold a batch back without ending the session: the agent's
// event rate (Limits.EventRate), a store that refuses it (retried with
// backoff), and an oversized frame (refused in an ack; the agent resends
// smaller ones). While a batch is held nothing more is read from the
// agent, whose unacknowledged frames are bounded: it waits.
type ingestor struct {
	g     *Gateway
	st    net.Conn
	agent store.Agent
	log   *slog.Logger
	lim   *rate.Limiter // nil: no rate limit
	// br is a pooled read-ahead buffer, held only while bytes are
	// buffered (see readFrame).
	br *bufio.Reader
	// acked is the last sequence stored for the agent: Welcome's, then
	// each batch's.
	acked uint64
	// refusable: the agent announced protocol.CapEventRefusal.
	refusable bool
	// resync: after a refusal, frames are ignored until one starts with
	// the events after acked (the agent's resend).
	resync bool
	// tooLarge is an oversized frame met while reading, to refuse once
	// what was read before it is stored.
	tooLarge *protocol.FrameTooLargeError
}

func (g *Gateway) newIngestor(st net.Conn, agent store.Agent, hello protocol.Hello, acked uint64, log *slog.Logger) *ingestor {
	in := &ingestor{g: g, st: st, agent: agent, log: log, acked: acked,
		refusable: slices.Contains(hello.Capabilities, protocol.CapEventRefusal)}
	if g.cfg.EventRate > 0 {
		in.lim = rate.NewLimiter(rate.Limit(g.cfg.EventRate), g.cfg.EventBurst)
	}
	return in
}

// step ingests what the agent has sent, and returns nil once nothing
// more is buffered (the session's watch runs it again when more comes).
// A batch that waits (rate, a failing store) or a frame half arrived
// keeps it running; the session's end (ctx) ends those waits: the
// stream is closed with the session.
func (in *ingestor) step(ctx context.Context) error {
	for {
		if in.tooLarge == nil && (in.br == nil || in.br.Buffered() == 0) {
			if n, done := in.st.(tunnel.Stream).ReadReady(); n == 0 && !done {
				in.releaseBuffer()
				in.st.(tunnel.Stream).Shrink()
				return nil
			}
		}
		if err := in.one(ctx); err != nil {
			in.releaseBuffer()
			return err
		}
	}
}

// one reads, stores and acknowledges one batch.
func (in *ingestor) one(ctx context.Context) error {
	batch, err := in.next()
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if in.tooLarge != nil && len(batch.Events) == 0 {
		return in.refuse()
	}
	if len(batch.Events) == 0 {
		return nil
	}
	if err := in.throttle(ctx, len(batch.Events)); err != nil {
		return err
	}
	stored, err := in.store(ctx, batch.Events)
	if err != nil {
		return err
	}
	in.g.cfg.Observer.EventsStored(len(stored))
	for _, se := range stored {
		if se.Event.Type == protocol.EventGap {
			in.g.cfg.Observer.EventsLost(se.Event.Lost)
		}
	}
	if fn := in.g.cfg.OnEvents; fn != nil && len(stored) > 0 {
		fn(in.agent, stored)
	}
	last := batch.Events[len(batch.Events)-1].Seq
	in.acked = max(in.acked, last)
	if err := protocol.WriteFrame(in.st, protocol.Ack{Seq: last}); err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	in.log.Debug("events stored", "count", len(batch.Events), "acked", last)
	return nil
}

// next reads the next batch. The agent sends each event as soon as it has
// it, without waiting for acks: frames that arrived while the previous
// batch was stored are already buffered and join this batch (group
// commit, so a burst pays the per-transaction cost, an fsync on SQLite,
// once), up to MaxCoalescedEvents. An oversized frame ends the batch and
// is left in in.tooLarge.
func (in *ingestor) next() (protocol.EventBatch, error) {
	var batch protocol.EventBatch
	if in.tooLarge != nil {
		return batch, nil
	}
	for len(batch.Events) == 0 {
		if err := in.readFrame(&batch); err != nil || in.tooLarge != nil {
			return batch, err
		}
	}
	for in.br != nil && in.br.Buffered() > 0 && len(batch.Events) < in.g.cfg.MaxCoalescedEvents {
		var more protocol.EventBatch
		if err := in.readFrame(&more); err != nil || in.tooLarge != nil {
			return batch, err
		}
		batch.Events = append(batch.Events, more.Events...)
	}
	if in.br != nil && in.br.Buffered() == 0 {
		in.releaseBuffer()
	}
	return batch, nil
}

// readFrame reads one frame into b, leaving b empty for a frame that is
// ignored (see resync) and setting in.tooLarge for an oversized one.
//
// The read-ahead buffer lets a burst be stored in one transaction, but
// 64 KiB per agent is 640 MiB of heap for 10,000 idle agents (mostly
// untouched pages, yet counted by the GC's pacing): an idle agent holds
// none. A pooled buffer is taken when a frame starts and given back once
// nothing is buffered.
func (in *ingestor) readFrame(b *protocol.EventBatch) error {
	var err error
	if in.br == nil {
		var hdr [4]byte
		if _, err := io.ReadFull(in.st, hdr[:]); err != nil {
			return err
		}
		in.br = readAheadPool.Get().(*bufio.Reader)
		in.br.Reset(in.st)
		err = protocol.ReadFrame(io.MultiReader(bytes.NewReader(hdr[:]), in.br), b, in.g.cfg.MaxFrameBytes)
	} else {
		err = protocol.ReadFrame(in.br, b, in.g.cfg.MaxFrameBytes)
	}
	var tooLarge *protocol.FrameTooLargeError
	if errors.As(err, &tooLarge) {
		in.tooLarge = tooLarge
		return nil
	}
	if err != nil {
		return err
	}
	if in.resync {
		if len(b.Events) > 0 && b.Events[0].Seq > in.acked+1 {
			// Sent after the refused frame: the agent sends it again.
			b.Events = nil
			return nil
		}
		in.resync = false
	}
	return nil
}

func (in *ingestor) releaseBuffer() {
	if in.br != nil {
		in.br.Reset(nil)
		readAheadPool.Put(in.br)
		in.br = nil
	}
}

// readAheadPool holds the event streams' read-ahead buffers.
var readAheadPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// refuse handles an events frame over MaxFrameBytes. An agent that
// resends smaller frames is told so in an ack, and its oversized frame is
// skipped unread (never allocated): the session goes on. An older agent
// would send the same frame after every reconnect, and ends the session
// as before.
func (in *ingestor) refuse() error {
	e := in.tooLarge
	in.tooLarge = nil
	in.g.cfg.Observer.AgentProtocolError("frame_too_large")
	if !in.refusable {
		return fmt.Errorf("read events: %w (the agent cannot resend smaller frames)", e)
	}
	if _, err := io.CopyN(io.Discard, in.br, e.Size); err != nil {
		return fmt.Errorf("skip refused events frame: %w", err)
	}
	in.log.Warn("agent sent an events frame over the limit; refused, the agent resends smaller frames",
		"frame_bytes", e.Size, "limit", e.Max, "acked", in.acked)
	in.resync = true
	if err := protocol.WriteFrame(in.st, protocol.Ack{Seq: in.acked, Refused: &protocol.Refusal{FrameBytes: e.Size, MaxBytes: e.Max}}); err != nil {
		return fmt.Errorf("write refusal: %w", err)
	}
	return nil
}

// throttle waits until the agent's event rate allows n more events. The
// wait is the backpressure: nothing is read meanwhile.
func (in *ingestor) throttle(ctx context.Context, n int) error {
	if in.lim == nil {
		return nil
	}
	var waited time.Duration
	for n > 0 {
		k := min(n, in.lim.Burst())
		r := in.lim.ReserveN(time.Now(), k)
		if d := r.Delay(); d > 0 {
			if err := sleep(ctx, d); err != nil {
				r.Cancel()
				return err
			}
			waited += d
		}
		n -= k
	}
	if waited > 0 {
		in.g.cfg.Observer.EventsThrottled(waited)
		in.log.Debug("agent over its event rate; ack held back", "waited", waited, "rate", in.g.cfg.EventRate)
	}
	return nil
}

// store stores events, retrying while the store refuses them, with a
// capped doubling wait. Meanwhile the batch is held: counted in
// StoreFailing, not acknowledged, and nothing more is read from the agent
// (it keeps its events and waits). A refusal that retrying cannot cure
// (a malformed batch, a closed store, an agent revoked meanwhile) ends the
// session.
func (in *ingestor) store(ctx context.Context, events []protocol.Event) ([]store.StoredEvent, error) {
	wait, held := in.g.cfg.StoreRetryMin, false
	defer func() {
		if held {
			in.g.holding(-1)
		}
	}()
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, in.g.cfg.StoreTimeout)
		stored, err := in.g.cfg.Store.StoreAgentEvents(sctx, in.agent.ID, in.agent.EnterpriseID, events)
		cancel()
		switch {
		case err == nil:
			if held {
				in.log.Info("held event batch stored", "events", len(events), "attempts", attempt)
			}
			return stored, nil
		case ctx.Err() != nil:
			return nil, ctx.Err() // the session ended; the agent resends
		case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrRevoked):
			return nil, fmt.Errorf("store %d events: %w", len(events), err)
		}
		in.g.storeFailed(err)
		level := slog.LevelDebug
		if !held {
			held, level = true, slog.LevelWarn
			in.g.holding(+1)
		}
		in.log.Log(ctx, level, "store refused an event batch; holding it unacknowledged and retrying",
			"events", len(events), "attempt", attempt, "retry_in", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, in.g.cfg.StoreRetryMax)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// holding counts batches held because the store refused them.
func (g *Gateway) holding(delta int64) {
	g.held.Add(delta)
	g.cfg.Observer.BatchesHeld(int(delta))
}

func (g *Gateway) storeFailed(err error) {
	g.cfg.Observer.EventStoreFailed()
	g.storeErr.Store(&err)
}

// StoreFailing reports whether event batches are being held because the
// store refused them, with the last refusal. Sessions stay up meanwhile
// (requests and originates go on); /readyz can say the store is failing.
func (g *Gateway) StoreFailing() (bool, error) {
	if g.held.Load() == 0 {
		return false, nil
	}
	if err := g.storeErr.Load(); err != nil {
		return true, *err
	}
	return true, errors.New("event store failing")
}
