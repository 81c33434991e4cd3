package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// StoredEvent is an agent's event as the control plane keeps it: Seq is
// the per-enterprise sequence clients resume from.
type StoredEvent struct {
	EnterpriseID int64
	Seq          int64
	AgentID      string
	ReceivedAt   time.Time
	Event        protocol.Event
}

// StoreAgentEvents stores a batch from one agent and advances its
// acknowledged sequence, in one transaction: when it returns nil, every
// event up to the batch's last agent sequence is durable and may be
// acknowledged. Events at or below the already-acknowledged sequence are
// the resend of a batch whose ack was lost; they are skipped, so a resend
// never duplicates. It returns the events newly stored, in order. The
// same transaction updates call history and queues webhook deliveries
// (recordDerived, calls.go), so neither can miss an acknowledged event.
// A revoked agent's batch is refused with ErrRevoked.
// On SQLite, batches of many agents that arrive together share one
// transaction (group commit, see startEventWriter).
func (s *Store) StoreAgentEvents(ctx context.Context, agentID string, enterpriseID int64, events []protocol.Event) ([]StoredEvent, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i := 1; i < len(events); i++ {
		if events[i].Seq <= events[i-1].Seq {
			return nil, invalid("events", "sequence must increase within a batch (%d after %d)", events[i].Seq, events[i-1].Seq)
		}
	}
	if s.d.name != dialectSQLite {
		// PostgreSQL commits concurrent transactions in parallel and
		// groups their WAL flushes itself.
		return s.storeEventsAlone(ctx, eventReq{agentID: agentID, enterpriseID: enterpriseID, events: events})
	}
	req := eventReq{agentID: agentID, enterpriseID: enterpriseID, events: events, done: make(chan eventRes, 1)}
	s.eventOnce.Do(s.startEventWriter)
	select {
	case s.eventq <- req:
	case <-s.auditStop:
		return nil, fmt.Errorf("store events: %w", ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("store events: %w", ctx.Err())
	}
	// Once queued the batch is committed or refused whatever the caller's
	// context does; a caller that gave up does not acknowledge, and the
	// agent's resend is skipped as already stored.
	res := <-req.done
	return res.out, res.err
}

// MaxEventGroup bounds the agent batches one SQLite transaction takes.
const MaxEventGroup = 128

type eventReq struct {
	agentID      string
	enterpriseID int64
	events       []protocol.Event
	done         chan eventRes
}

type eventRes struct {
	out []StoredEvent
	err error
}

// startEventWriter runs the SQLite group commit of agent event batches:
// on SQLite every commit is an fsync on the one write connection, so with
// thousands of PBXs each sending its own small batches, one transaction
// per batch would cap the fleet at the disk's fsync rate. Batches that
// arrive while one transaction runs are committed together in the next.
func (s *Store) startEventWriter() {
	s.auditWG.Add(1)
	go func() {
		defer s.auditWG.Done()
		groupLoop(s.eventq, s.auditStop, MaxEventGroup, s.writeEventGroup)
	}()
}

// writeEventGroup commits the batches in one transaction; if that fails,
// each is retried alone so one agent's bad batch cannot sink the others.
func (s *Store) writeEventGroup(group []eventReq) {
	// Writes must finish even while the store is closing: Close waits.
	ctx, cancel := s.writerCtx()
	defer cancel()
	if len(group) > 1 {
		if outs, err := s.storeEventsTx(ctx, group); err == nil {
			for i, r := range group {
				r.done <- eventRes{out: outs[i]}
			}
			return
		}
	}
	for _, r := range group {
		out, err := s.storeEventsAlone(ctx, r)
		r.done <- eventRes{out: out, err: err}
	}
}

func (s *Store) storeEventsAlone(ctx context.Context, r eventReq) ([]StoredEvent, error) {
	outs, err := s.storeEventsTx(ctx, []eventReq{r})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// storeEventsTx stores each request's batch in one transaction.
func (s *Store) storeEventsTx(ctx context.Context, group []eventReq) ([][]StoredEvent, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store events: %w", err)
	}
	defer tx.Rollback()
	outs := make([][]StoredEvent, len(group))
	for i, r := range group {
		if outs[i], err = s.storeAgentEventsIn(ctx, tx, r.agentID, r.enterpriseID, r.events); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store events: commit: %w", err)
	}
	return outs, nil
}

// The statements of the event transaction, prepared once (prepareWrites).
const (
	insertEventSQL = `INSERT INTO events (enterprise_id, seq, agent_id, agent_seq, type, call_id, at, received_at, body)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	insertEventSeqSQL  = `INSERT INTO enterprise_event_seqs (enterprise_id, last_seq) VALUES ($1, 0) ON CONFLICT DO NOTHING`
	advanceEventSeqSQL = `UPDATE enterprise_event_seqs SET last_seq = last_seq + $2 WHERE enterprise_id = $1 RETURNING last_seq`
	advanceAckedSQL    = `UPDATE agents SET last_acked_seq = $2 WHERE id = $1`
)

// selectAckedForUpdate reads an agent's acknowledged sequence and whether
// it is revoked in the event transaction; on PostgreSQL it locks the row,
// so two sessions of one agent cannot interleave, and a revocation either
// commits before the batch (which is then refused) or after it (SQLite
// has one writer anyway).
func (s *Store) selectAckedForUpdate() string {
	q := `SELECT last_acked_seq, revoked_at IS NOT NULL FROM agents WHERE id = $1 AND enterprise_id = $2`
	if s.d.name == dialectPostgres {
		q += " FOR UPDATE"
	}
	return q
}

// storeAgentEventsIn is one agent batch's part of a transaction.
func (s *Store) storeAgentEventsIn(ctx context.Context, tx *sql.Tx, agentID string, enterpriseID int64, events []protocol.Event) ([]StoredEvent, error) {
	now := s.now()

	var acked int64
	var revoked bool
	err := s.txQueryRow(ctx, tx, s.selectAckedForUpdate(), agentID, enterpriseID).Scan(&acked, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("agent %s: %w", agentID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store events: read acked seq: %w", err)
	}
	if revoked {
		// Nothing of a revoked agent is stored, even from a tunnel that
		// was open when the revocation committed.
		return nil, fmt.Errorf("agent %s: %w", agentID, ErrRevoked)
	}
	fresh := slices.DeleteFunc(slices.Clone(events), func(e protocol.Event) bool { return int64(e.Seq) <= acked })
	if len(fresh) == 0 {
		return nil, nil
	}
	if err := s.txExec(ctx, tx, insertEventSeqSQL, enterpriseID); err != nil {
		return nil, fmt.Errorf("store events: sequence row: %w", err)
	}
	var last int64
	if err := s.txQueryRow(ctx, tx, advanceEventSeqSQL, enterpriseID, len(fresh)).Scan(&last); err != nil {
		return nil, fmt.Errorf("store events: advance sequence: %w", err)
	}
	first := last - int64(len(fresh)) + 1
	stmt, err := s.txStmt(ctx, tx, insertEventSQL)
	if err != nil {
		return nil, fmt.Errorf("store events: %w", err)
	}
	out := make([]StoredEvent, 0, len(fresh))
	for i, e := range fresh {
		body, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("store events: encode: %w", err)
		}
		at := e.Time
		if at.IsZero() {
			at = now
		}
		seq := first + int64(i)
		if _, err := stmt.ExecContext(ctx, enterpriseID, seq, agentID, int64(e.Seq), e.Type, e.CallID, s.d.timeArg(at), s.d.timeArg(now), string(body)); err != nil {
			return nil, fmt.Errorf("store event %d of agent %s: %w", e.Seq, agentID, err)
		}
		out = append(out, StoredEvent{EnterpriseID: enterpriseID, Seq: seq, AgentID: agentID, ReceivedAt: now, Event: e})
	}
	if err := s.recordDerived(ctx, tx, agentID, enterpriseID, out); err != nil {
		return nil, err
	}
	if err := s.txExec(ctx, tx, advanceAckedSQL, agentID, int64(fresh[len(fresh)-1].Seq)); err != nil {
		return nil, fmt.Errorf("store events: advance acked seq: %w", err)
	}
	return out, nil
}

// EventFilter selects events of one enterprise.
type EventFilter struct {
	EnterpriseID int64
	After        int64    // only seq > After
	AgentID      string   // "" = every PBX
	Types        []string // empty = every type
	CallID       string   // "" = every call
	Limit        int      // default 500, at most 5000
}

// ListEvents returns events in sequence order.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]StoredEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	limit = min(limit, 5000)
	q := `SELECT seq, agent_id, received_at, body FROM events WHERE enterprise_id = $1 AND seq > $2`
	args := []any{f.EnterpriseID, f.After}
	if f.AgentID != "" {
		args = append(args, f.AgentID)
		q += fmt.Sprintf(" AND agent_id = $%d", len(args))
	}
	if f.CallID != "" {
		args = append(args, f.CallID)
		q += fmt.Sprintf(" AND call_id = $%d", len(args))
	}
	if len(f.Types) > 0 {
		q += " AND type IN ("
		for i, t := range f.Types {
			args = append(args, t)
			if i > 0 {
				q += ", "
			}
			q += fmt.Sprintf("$%d", len(args))
		}
		q += ")"
	}
	args = append(args, limit)
	q += fmt.Sprintf(" ORDER BY seq LIMIT $%d", len(args))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		var (
			se   StoredEvent
			body string
		)
		if err := rows.Scan(&se.Seq, &se.AgentID, dbTime{&se.ReceivedAt}, &body); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &se.Event); err != nil {
			return nil, fmt.Errorf("list events: decode seq %d: %w", se.Seq, err)
		}
		se.EnterpriseID = f.EnterpriseID
		out = append(out, se)
	}
	return out, rows.Err()
}

// LastEventSeq is the enterprise's latest event sequence (0 if none).
func (s *Store) LastEventSeq(ctx context.Context, enterpriseID int64) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT last_seq FROM enterprise_event_seqs WHERE enterprise_id = $1`, enterpriseID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last event seq: %w", err)
	}
	return seq, nil
}

// LastEventSeqs is LastEventSeq of several enterprises, in one query; an
// enterprise without events is absent from the map.
func (s *Store) LastEventSeqs(ctx context.Context, enterpriseIDs []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(enterpriseIDs))
	for start := 0; start < len(enterpriseIDs); start += 500 {
		ids := enterpriseIDs[start:min(start+500, len(enterpriseIDs))]
		args, in := inList(nil, ids)
		rows, err := s.db.QueryContext(ctx, `SELECT enterprise_id, last_seq FROM enterprise_event_seqs WHERE enterprise_id `+in, args...)
		if err != nil {
			return nil, fmt.Errorf("last event seqs: %w", err)
		}
		for rows.Next() {
			var id, seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				rows.Close()
				return nil, fmt.Errorf("last event seqs: %w", err)
			}
			out[id] = seq
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("last event seqs: %w", err)
		}
	}
	return out, nil
}
