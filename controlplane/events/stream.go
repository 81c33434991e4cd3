package events

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Query selects events for a page or a stream: GET /v1/events's
// ?pbx=&types=&after=&limit=.
type Query struct {
	Filter Filter
	// After is the sequence to resume after; HasAfter says it was given
	// (a stream without it starts at the present).
	After    int64
	HasAfter bool
	// Limit bounds a page (Stream ignores it).
	Limit int
}

// ParseQuery reads a Query from GET /v1/events's query string. The PBX
// filter is taken as given: the caller checks that it names one of the
// enterprise's PBXs.
func ParseQuery(q url.Values) (Query, error) {
	var sq Query
	sq.Filter.AgentID = q.Get("pbx")
	types, err := ParseTypes(q.Get("types"))
	if err != nil {
		return sq, err
	}
	sq.Filter.Types = types
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return sq, invalidf("after: want a sequence number >= 0, got %q", v)
		}
		sq.After, sq.HasAfter = n, true
	}
	sq.Limit = DefaultEventPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxEventPageSize {
			return sq, invalidf("limit: want 1-%d, got %q", MaxEventPageSize, v)
		}
		sq.Limit = n
	}
	return sq, nil
}

// ParseTypes reads a comma-separated list of event types (a ?types=
// filter), without duplicates; empty means every type.
func ParseTypes(v string) ([]string, error) {
	var out []string
	if v == "" {
		return nil, nil
	}
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(EventTypes, t) {
			return nil, invalidf("types: unknown event type %q (want any of %s)", t, strings.Join(EventTypes, ","))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// IsWebSocket reports whether r asks for a WebSocket upgrade.
func IsWebSocket(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		if strings.EqualFold(strings.TrimSpace(v), "websocket") {
			return true
		}
	}
	return false
}

// latest reads the enterprise's latest sequence and refuses a resume
// point beyond it.
func (s *Service) latest(ctx context.Context, enterpriseID int64, q Query) (int64, error) {
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	last, err := s.cfg.Store.LastEventSeq(sctx, enterpriseID)
	if err != nil {
		return 0, err
	}
	if q.After > last {
		return 0, invalidf("after %d is beyond the latest event (seq %d)", q.After, last)
	}
	return last, nil
}

// Page is one GET /v1/events page (polling).
type Page struct {
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

// Page reads the events of the enterprise after q.After, at most q.Limit.
func (s *Service) Page(ctx context.Context, enterpriseID int64, q Query) (Page, error) {
	last, err := s.latest(ctx, enterpriseID, q)
	if err != nil {
		return Page{}, err
	}
	var out Page
	var evs []store.StoredEvent
	err = s.readPage(ctx, enterpriseID, func(ctx context.Context) error {
		truncated, oldest, err := s.truncated(ctx, enterpriseID, q.After, last)
		if err != nil {
			return err
		}
		evs, err = s.cfg.Store.ListEvents(ctx, store.EventFilter{EnterpriseID: enterpriseID, After: q.After,
			AgentID: q.Filter.AgentID, Types: q.Filter.Types, Limit: q.Limit + 1})
		if err != nil {
			return err
		}
		out = Page{Events: []json.RawMessage{}, NextAfter: max(q.After, last), Truncated: truncated, OldestSeq: oldest}
		if len(evs) > q.Limit {
			evs, out.HasMore = evs[:q.Limit], true
		}
		for _, se := range evs {
			b, err := EncodeEvent(se)
			if err != nil {
				return err
			}
			out.Events = append(out.Events, b)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	if out.HasMore {
		out.NextAfter = evs[len(evs)-1].Seq
	} else if n := len(evs); n > 0 {
		// Stored after `last` was read: still covered by this page.
		out.NextAfter = max(out.NextAfter, evs[n-1].Seq)
	}
	return out, nil
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

// ErrCredentialRevoked, as the cause of a stream's request context, closes
// the stream with 1008 and this text as the reason: the credential that
// opened it was revoked.
var ErrCredentialRevoked = errors.New("credential revoked")

// Stream upgrades r to a WebSocket and streams the enterprise's events
// until the client or the server goes. Order matters for "no gap, no
// duplicate": subscribe first, then read the latest stored sequence and
// replay up to it from the store, then send live batches, skipping what
// the replay covered and filling any hole in the sequence from the store.
// Because the enterprise sequence is allocated under a lock held to
// commit, every sequence below a live one is already readable, so a hole
// can always be filled.
//
// An error means nothing was written (a resume point beyond the latest
// event, ErrTooManySubscribers, the store): the caller answers it. Once
// upgraded, Stream returns nil and the WebSocket close says why it ended;
// who names the credential in logs.
func (s *Service) Stream(w http.ResponseWriter, r *http.Request, enterpriseID int64, q Query, who string) error {
	sub, err := s.broker.Subscribe(enterpriseID, q.Filter, s.cfg.SubscriberBuffer)
	if err != nil {
		return err
	}
	defer func() { sub.Close() }()
	if _, err := s.latest(r.Context(), enterpriseID, q); err != nil {
		return err
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		return nil // Accept answered the client itself
	}
	defer c.CloseNow()
	// The client sends nothing; reading still has to happen for pings and
	// its close frame. ctx ends when the client goes, or when the request's
	// context does (the server stops, the credential was revoked): not
	// through CloseRead, which would drop the connection before the close
	// frame saying why is sent.
	ctx, stop := context.WithCancel(c.CloseRead(context.WithoutCancel(r.Context())))
	defer stop()
	defer context.AfterFunc(r.Context(), stop)()
	st := &streamer{s: s, c: c, enterpriseID: enterpriseID, q: q, sub: sub}
	code, reason, err := st.run(ctx)
	sub = st.sub
	if err != nil && ctx.Err() == nil {
		s.log.Warn("event stream failed", "enterprise_id", enterpriseID, "credential", who, "err", err)
	}
	if ctx.Err() != nil && r.Context().Err() != nil {
		code, reason = websocket.StatusGoingAway, "server shutting down; resume with after="+strconv.FormatInt(st.cursor, 10)
		if errors.Is(context.Cause(r.Context()), ErrCredentialRevoked) {
			code, reason = websocket.StatusPolicyViolation, ErrCredentialRevoked.Error()
		}
	}
	_ = c.Close(code, reason)
	return nil
}

type streamer struct {
	s            *Service
	c            *websocket.Conn
	enterpriseID int64
	q            Query
	sub          *Subscription
	cursor       int64 // every sequence up to here was sent or filtered out
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
		last, err := s.cfg.Store.LastEventSeq(sctx, st.enterpriseID)
		cancel()
		if err != nil {
			return err
		}
		if round == 0 {
			if !st.q.HasAfter {
				st.cursor = last
				return nil
			}
			st.cursor = st.q.After
			sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
			trunc, oldest, err := s.truncated(sctx, st.enterpriseID, st.q.After, last)
			cancel()
			if err != nil {
				return err
			}
			if trunc {
				from := last
				if oldest > 0 {
					from = oldest - 1
				}
				msg := fmt.Sprintf("events %d..%d are older than retention (%s) and were pruned", st.q.After+1, from, s.cfg.EventRetention)
				if err := st.send(ctx, Control{Type: MsgTruncated, Seq: from, RequestedAfter: st.q.After, OldestSeq: oldest, Message: msg}); err != nil {
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
		sub, err := s.broker.Subscribe(st.enterpriseID, st.q.Filter, s.cfg.SubscriberBuffer)
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
		var evs []store.StoredEvent
		var page [][]byte
		err := s.readPage(ctx, st.enterpriseID, func(sctx context.Context) error {
			var err error
			evs, err = s.cfg.Store.ListEvents(sctx, store.EventFilter{EnterpriseID: st.enterpriseID, After: st.cursor,
				AgentID: st.q.Filter.AgentID, Types: st.q.Filter.Types, Limit: s.cfg.ReplayPageSize})
			if err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			for _, se := range evs {
				if se.Seq > to {
					break
				}
				b, err := EncodeEvent(se)
				if err != nil {
					return err
				}
				page = append(page, b)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Written after the slot is given back: a slow client does not hold
		// its enterprise's replays up.
		for i, b := range page {
			if err := st.write(ctx, b); err != nil {
				return err
			}
			s.cfg.Observer.EventsDelivered("websocket", 1)
			st.cursor = evs[i].Seq
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
		i, _ := slices.BinarySearchFunc(st.held, b.First, func(h Batch, first int64) int { return cmp.Compare(h.First, first) })
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
