package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// streamQuery is GET /v1/events's query.
type streamQuery struct {
	filter   Filter
	after    int64
	hasAfter bool
	limit    int
}

func parseStreamQuery(r *http.Request) (streamQuery, error) {
	q := r.URL.Query()
	var sq streamQuery
	sq.filter.AgentID = q.Get("pbx")
	if v := q.Get("types"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(EventTypes, t) {
				return sq, invalidf("types: unknown event type %q (want any of %s)", t, strings.Join(EventTypes, ","))
			}
			if !slices.Contains(sq.filter.Types, t) {
				sq.filter.Types = append(sq.filter.Types, t)
			}
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return sq, invalidf("after: want a sequence number >= 0, got %q", v)
		}
		sq.after, sq.hasAfter = n, true
	}
	sq.limit = DefaultEventPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventPageSize {
			return sq, invalidf("limit: want 1-%d, got %q", MaxEventPageSize, v)
		}
		sq.limit = n
	}
	return sq, nil
}

func isWebSocket(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		if strings.EqualFold(strings.TrimSpace(v), "websocket") {
			return true
		}
	}
	return false
}

// events serves GET /v1/events: a WebSocket when the request asks for
// an upgrade, else one JSON page (polling).
func (s *Service) events(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	sq, err := parseStreamQuery(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(r)
	err = s.agentOf(ctx, p.EnterpriseID, sq.filter.AgentID)
	if err != nil {
		cancel()
		return err
	}
	last, err := s.cfg.Store.LastEventSeq(ctx, p.EnterpriseID)
	cancel()
	if err != nil {
		return err
	}
	if sq.after > last {
		return invalidf("after %d is beyond the latest event (seq %d)", sq.after, last)
	}
	if !isWebSocket(r) {
		return s.page(w, r, p, sq, last)
	}
	return s.stream(w, r, p, sq)
}

// eventsPage is a GET /v1/events page.
type eventsPage struct {
	Events []json.RawMessage `json:"events"`
	// NextAfter is the after= of the next poll: every event up to it was
	// considered (filtered ones included), so polling never rescans.
	NextAfter int64 `json:"next_after"`
	HasMore   bool  `json:"has_more"`
	// Truncated: events after the requested sequence were pruned by
	// retention; OldestSeq is the oldest still kept.
	Truncated bool  `json:"truncated"`
	OldestSeq int64 `json:"oldest_seq,omitempty"`
}

func (s *Service) page(w http.ResponseWriter, r *http.Request, p auth.Principal, sq streamQuery, last int64) error {
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	truncated, oldest, err := s.truncated(ctx, p.EnterpriseID, sq.after, last)
	if err != nil {
		return err
	}
	evs, err := s.cfg.Store.ListEvents(ctx, store.EventFilter{EnterpriseID: p.EnterpriseID, After: sq.after,
		AgentID: sq.filter.AgentID, Types: sq.filter.Types, Limit: sq.limit + 1})
	if err != nil {
		return err
	}
	out := eventsPage{Events: []json.RawMessage{}, NextAfter: max(sq.after, last), Truncated: truncated, OldestSeq: oldest}
	if len(evs) > sq.limit {
		evs, out.HasMore = evs[:sq.limit], true
	}
	for _, se := range evs {
		b, err := encodeEvent(se)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, b)
	}
	if out.HasMore {
		out.NextAfter = evs[len(evs)-1].Seq
	} else if n := len(evs); n > 0 {
		// Stored after `last` was read: still covered by this page.
		out.NextAfter = max(out.NextAfter, evs[n-1].Seq)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// truncated reports whether events after `after` were lost to retention:
// the oldest kept is past after+1, or none is kept although some came.
func (s *Service) truncated(ctx context.Context, enterpriseID, after, last int64) (bool, int64, error) {
	if last <= after {
		return false, 0, nil
	}
	oldest, err := s.cfg.Store.OldestEventSeq(ctx, enterpriseID)
	if err != nil {
		return false, 0, err
	}
	return oldest == 0 || oldest > after+1, oldest, nil
}

// stream serves the WebSocket. Order matters for "no gap, no duplicate":
// subscribe first, then read the latest stored sequence and replay up to
// it from the store, then send live batches, skipping what the replay
// covered and filling any hole in the sequence from the store. Because
// the enterprise sequence is allocated under a lock held to commit, every
// sequence below a live one is already readable, so a hole can always be
// filled.
func (s *Service) stream(w http.ResponseWriter, r *http.Request, p auth.Principal, sq streamQuery) error {
	sub, err := s.broker.Subscribe(p.EnterpriseID, sq.filter, s.cfg.SubscriberBuffer)
	if errors.Is(err, ErrTooManySubscribers) {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "%s; retry later", err.Error())
	}
	if err != nil {
		return err
	}
	defer func() { sub.Close() }()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return nil // Accept answered the client itself
	}
	defer c.CloseNow()
	// The client sends nothing; reading still has to happen for pings and
	// its close frame. ctx ends when the client goes or the server stops.
	ctx := c.CloseRead(r.Context())
	st := &streamer{s: s, c: c, p: p, sq: sq, sub: sub}
	code, reason, err := st.run(ctx)
	sub = st.sub
	if err != nil && ctx.Err() == nil {
		s.log.Warn("event stream failed", "enterprise", p.EnterpriseNumber, "credential", p.CredentialID(), "err", err)
	}
	if ctx.Err() != nil && r.Context().Err() != nil {
		code, reason = websocket.StatusGoingAway, "server shutting down; resume with after="+strconv.FormatInt(st.cursor, 10)
	}
	_ = c.Close(code, reason)
	return nil
}

type streamer struct {
	s      *Service
	c      *websocket.Conn
	p      auth.Principal
	sq     streamQuery
	sub    *Subscription
	cursor int64 // every sequence up to here was sent or filtered out
	// held: live batches that arrived ahead of the cursor, by First.
	held       []Batch
	heldEvents int
}

// run streams until the client or the server goes, and says how to close.
func (st *streamer) run(ctx context.Context) (websocket.StatusCode, string, error) {
	internal := func(err error) (websocket.StatusCode, string, error) {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return st.slow() // a write timed out: the client stopped reading
		}
		return websocket.StatusInternalError, "internal error; resume with after=" + strconv.FormatInt(st.cursor, 10), err
	}
	if err := st.catchUp(ctx); err != nil {
		if errors.Is(err, ErrSlowSubscriber) {
			return st.slow()
		}
		return internal(err)
	}
	if err := st.send(ctx, Control{Type: MsgLive, Seq: st.cursor}); err != nil {
		return internal(err)
	}
	ping := time.NewTicker(st.s.cfg.PingInterval)
	defer ping.Stop()
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	defer grace.Stop()
	armed := false // grace runs for the oldest hole
	for {
		select {
		case <-ctx.Done():
			return websocket.StatusNormalClosure, "", ctx.Err()
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, st.s.cfg.WriteTimeout)
			err := st.c.Ping(pctx)
			cancel()
			if err != nil {
				return websocket.StatusGoingAway, "no pong", err
			}
		case <-grace.C:
			armed = false
			if err := st.fillHole(ctx); err != nil {
				return internal(err)
			}
		case <-st.sub.Ready():
			batches, err := st.sub.Take()
			if errors.Is(err, ErrSlowSubscriber) {
				return st.slow()
			}
			if err != nil {
				return internal(err)
			}
			for _, b := range batches {
				if err := st.accept(ctx, b); err != nil {
					return internal(err)
				}
			}
			if st.heldEvents > st.s.cfg.SubscriberBuffer {
				if err := st.fillHole(ctx); err != nil {
					return internal(err)
				}
			}
		}
		switch {
		case len(st.held) > 0 && !armed:
			grace.Reset(st.s.cfg.HoleGrace)
			armed = true
		case len(st.held) == 0 && armed:
			grace.Stop()
			armed = false
		}
	}
}

func (st *streamer) slow() (websocket.StatusCode, string, error) {
	st.s.cfg.Observer.EventsDropped("slow_subscriber", max(1, st.sub.Dropped()))
	return websocket.StatusPolicyViolation, fmt.Sprintf("slow consumer: over %d events buffered; resume with after=%d",
		st.s.cfg.SubscriberBuffer, st.cursor), nil
}

// catchUp brings the client from its after= (or the present) to the
// latest stored sequence. If the live buffer overflows meanwhile (a long
// replay), it subscribes afresh and catches up again from the store, at
// most MaxCatchUpRounds times.
func (st *streamer) catchUp(ctx context.Context) error {
	s := st.s
	for round := 0; ; round++ {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		last, err := s.cfg.Store.LastEventSeq(sctx, st.p.EnterpriseID)
		cancel()
		if err != nil {
			return err
		}
		if round == 0 {
			if !st.sq.hasAfter {
				st.cursor = last
				return nil
			}
			st.cursor = st.sq.after
			sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
			trunc, oldest, err := s.truncated(sctx, st.p.EnterpriseID, st.sq.after, last)
			cancel()
			if err != nil {
				return err
			}
			if trunc {
				from := last
				if oldest > 0 {
					from = oldest - 1
				}
				msg := fmt.Sprintf("events %d..%d are older than retention (%s) and were pruned", st.sq.after+1, from, s.cfg.EventRetention)
				if err := st.send(ctx, Control{Type: MsgTruncated, Seq: from, RequestedAfter: st.sq.after, OldestSeq: oldest, Message: msg}); err != nil {
					return err
				}
				st.cursor = from
			}
		}
		if err := st.replay(ctx, last); err != nil {
			return err
		}
		if !errors.Is(st.sub.Err(), ErrSlowSubscriber) {
			return nil
		}
		if round+1 >= s.cfg.MaxCatchUpRounds {
			return ErrSlowSubscriber
		}
		st.sub.Close()
		sub, err := s.broker.Subscribe(st.p.EnterpriseID, st.sq.filter, s.cfg.SubscriberBuffer)
		if err != nil {
			return err
		}
		st.sub = sub
	}
}

// replay sends stored events in (cursor, to] that match the filter and
// moves the cursor to `to`.
func (st *streamer) replay(ctx context.Context, to int64) error {
	s := st.s
	for st.cursor < to {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		evs, err := s.cfg.Store.ListEvents(sctx, store.EventFilter{EnterpriseID: st.p.EnterpriseID, After: st.cursor,
			AgentID: st.sq.filter.AgentID, Types: st.sq.filter.Types, Limit: s.cfg.ReplayPageSize})
		cancel()
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		for _, se := range evs {
			if se.Seq > to {
				break
			}
			b, err := encodeEvent(se)
			if err != nil {
				return err
			}
			if err := st.write(ctx, b); err != nil {
				return err
			}
			s.cfg.Observer.EventsDelivered("websocket", 1)
			st.cursor = se.Seq
		}
		if len(evs) < s.cfg.ReplayPageSize || evs[len(evs)-1].Seq >= to {
			break
		}
	}
	st.cursor = max(st.cursor, to)
	return nil
}

// accept takes a live batch. Batches of one enterprise can reach the hub
// out of sequence order (two PBXs' transactions commit in order, but
// their hooks race): a batch ahead of the cursor is held for HoleGrace,
// in which the missing one normally arrives; fillHole reads the gap from
// the store if it does not (a batch stored by another replica, or an
// encoding failure).
func (st *streamer) accept(ctx context.Context, b Batch) error {
	if b.Last <= st.cursor {
		return nil
	}
	if b.First > st.cursor+1 {
		i, _ := slices.BinarySearchFunc(st.held, b.First, func(h Batch, first int64) int { return cmpInt(h.First, first) })
		st.held = slices.Insert(st.held, i, b)
		st.heldEvents += max(1, len(b.Items))
		return nil
	}
	if err := st.deliver(ctx, b); err != nil {
		return err
	}
	return st.drainHeld(ctx)
}

// drainHeld delivers held batches the cursor has reached.
func (st *streamer) drainHeld(ctx context.Context) error {
	for len(st.held) > 0 && st.held[0].First <= st.cursor+1 {
		b := st.held[0]
		st.held = st.held[1:]
		st.heldEvents -= max(1, len(b.Items))
		if err := st.deliver(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// fillHole reads the gap before the first held batch from the store.
func (st *streamer) fillHole(ctx context.Context) error {
	if len(st.held) == 0 {
		return nil
	}
	if err := st.replay(ctx, st.held[0].First-1); err != nil {
		return err
	}
	return st.drainHeld(ctx)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deliver sends a batch that starts at or before cursor+1, skipping what
// the cursor already covers.
func (st *streamer) deliver(ctx context.Context, b Batch) error {
	if b.Last <= st.cursor {
		return nil
	}
	for _, it := range b.Items {
		if it.Seq <= st.cursor {
			continue
		}
		if err := st.write(ctx, it.JSON); err != nil {
			return err
		}
		st.s.cfg.Observer.EventsDelivered("websocket", 1)
	}
	st.cursor = b.Last
	return nil
}

func (st *streamer) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.write(ctx, b)
}

func (st *streamer) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, st.s.cfg.WriteTimeout)
	defer cancel()
	if err := st.c.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
