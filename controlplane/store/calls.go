package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Call history limits.
const (
	DefaultCallPageSize = 50
	MaxCallPageSize     = 500
	// MaxCallFilterLen bounds a text filter (extension, number, call id).
	MaxCallFilterLen = 128
)

// Call is one call's lifecycle as call.* events built it.
type Call struct {
	EnterpriseID    int64
	AgentID         string // the PBX
	CallID          string // uniqueid of the first leg
	Status          string // protocol.Call* statuses
	Direction       string
	From, To        string
	Channel         string
	StartedAt       time.Time
	AnsweredAt      time.Time // zero until answered
	AnsweredBy      string
	AnsweredChannel string
	EndedAt         time.Time // zero while the call is live
	Cause           *int      // nil until ended
	CauseText       string
	HungupBy        string
	DurationS       *int // nil until ended
	BillsecS        *int
	Monitored       bool  // a supervisor monitored it
	FirstSeq        int64 // enterprise seq of its first event
	LastSeq         int64 // and of its latest
	UpdatedAt       time.Time

	rowID int64
}

// Ended reports whether the call is over.
func (c Call) Ended() bool { return !c.EndedAt.IsZero() }

// recordDerived writes what the stored events imply, inside the events'
// own transaction: the call history rows and the webhook outbox rows. So
// an event acknowledged to its agent is never missing from either, even
// if the process dies right after the commit.
func (s *Store) recordDerived(ctx context.Context, tx *sql.Tx, agentID string, enterpriseID int64, stored []StoredEvent) error {
	if err := s.applyCallEvents(ctx, tx, agentID, enterpriseID, stored); err != nil {
		return err
	}
	return s.enqueueDeliveries(ctx, tx, agentID, enterpriseID, stored)
}

// callRow is one call's values as a batch of events sets them; the
// upsert below merges it into the stored row by the same rules foldEvent
// merges events: latest status unless the call already ended, latest
// non-empty parties and direction, first channel, first answer, first
// end, monitored once monitored, earliest start.
type callRow struct {
	callID, status, direction, from, to, channel string
	startedAt, answeredAt, endedAt, updatedAt    time.Time
	answeredBy, answeredChannel                  string
	cause, duration, billsec                     *int
	causeText, hungupBy                          string
	monitored                                    bool
	firstSeq, lastSeq                            int64
}

func (r *callRow) ended() bool { return !r.endedAt.IsZero() }

// foldEvent merges one more event of the call into r (nil: the first).
func foldEvent(r *callRow, se StoredEvent) *callRow {
	e := se.Event
	at := e.Time
	if at.IsZero() {
		at = se.ReceivedAt
	}
	n := callRow{callID: e.CallID, status: e.Status, direction: e.Direction, from: e.From, to: e.To, channel: e.Channel,
		startedAt: at, answeredBy: e.AnsweredBy, answeredChannel: e.AnsweredChannel,
		monitored: e.Type == protocol.EventMonitorStarted, firstSeq: se.Seq, lastSeq: se.Seq, updatedAt: se.ReceivedAt}
	if n.status == "" {
		n.status = protocol.CallQueued
	}
	if e.AnsweredAt != nil {
		n.answeredAt = *e.AnsweredAt
	}
	if e.Type == protocol.EventCallEnded {
		n.endedAt = at
		if e.EndedAt != nil && !e.EndedAt.IsZero() {
			n.endedAt = *e.EndedAt
		}
		cause, dur, bill := e.Cause, e.DurationS, e.BillsecS
		n.cause, n.duration, n.billsec = &cause, &dur, &bill
		n.causeText, n.hungupBy = e.CauseText, e.HungupBy
	}
	if r == nil {
		return &n
	}
	if !r.ended() || n.ended() {
		r.status = n.status
	}
	later := func(old *string, v string) {
		if v != "" {
			*old = v
		}
	}
	first := func(old *string, v string) {
		if *old == "" {
			*old = v
		}
	}
	later(&r.direction, n.direction)
	later(&r.from, n.from)
	later(&r.to, n.to)
	first(&r.channel, n.channel)
	if n.startedAt.Before(r.startedAt) {
		r.startedAt = n.startedAt
	}
	if r.answeredAt.IsZero() {
		r.answeredAt = n.answeredAt
	}
	first(&r.answeredBy, n.answeredBy)
	first(&r.answeredChannel, n.answeredChannel)
	if !r.ended() && n.ended() {
		r.endedAt, r.cause, r.duration, r.billsec = n.endedAt, n.cause, n.duration, n.billsec
	}
	first(&r.causeText, n.causeText)
	first(&r.hungupBy, n.hungupBy)
	r.monitored = r.monitored || n.monitored
	r.firstSeq, r.lastSeq = min(r.firstSeq, n.firstSeq), max(r.lastSeq, n.lastSeq)
	r.updatedAt = n.updatedAt
	return r
}

const callColumns = 22

// callUpsertHead and callUpsertTail surround the VALUES rows: one row per
// call of the batch (PostgreSQL refuses a statement that updates one row
// twice), merged into the stored row by the same rules as foldEvent.
const callUpsertHead = `INSERT INTO calls (enterprise_id, agent_id, call_id, status, direction, from_number, to_number, channel,
	started_at, answered_at, answered_by, answered_channel, ended_at, cause, cause_text, hungup_by, duration_s, billsec_s,
	monitored, first_seq, last_seq, updated_at) VALUES `

const callUpsertTail = `
ON CONFLICT (enterprise_id, agent_id, call_id) DO UPDATE SET
	status = CASE WHEN calls.ended_at IS NOT NULL AND excluded.ended_at IS NULL THEN calls.status ELSE excluded.status END,
	direction = CASE WHEN excluded.direction <> '' THEN excluded.direction ELSE calls.direction END,
	from_number = CASE WHEN excluded.from_number <> '' THEN excluded.from_number ELSE calls.from_number END,
	to_number = CASE WHEN excluded.to_number <> '' THEN excluded.to_number ELSE calls.to_number END,
	channel = CASE WHEN calls.channel <> '' THEN calls.channel ELSE excluded.channel END,
	started_at = CASE WHEN excluded.started_at < calls.started_at THEN excluded.started_at ELSE calls.started_at END,
	answered_at = COALESCE(calls.answered_at, excluded.answered_at),
	answered_by = CASE WHEN calls.answered_by <> '' THEN calls.answered_by ELSE excluded.answered_by END,
	answered_channel = CASE WHEN calls.answered_channel <> '' THEN calls.answered_channel ELSE excluded.answered_channel END,
	ended_at = COALESCE(calls.ended_at, excluded.ended_at),
	cause = COALESCE(calls.cause, excluded.cause),
	cause_text = CASE WHEN calls.cause_text <> '' THEN calls.cause_text ELSE excluded.cause_text END,
	hungup_by = CASE WHEN calls.hungup_by <> '' THEN calls.hungup_by ELSE excluded.hungup_by END,
	duration_s = COALESCE(calls.duration_s, excluded.duration_s),
	billsec_s = COALESCE(calls.billsec_s, excluded.billsec_s),
	monitored = (calls.monitored OR excluded.monitored),
	first_seq = CASE WHEN excluded.first_seq < calls.first_seq THEN excluded.first_seq ELSE calls.first_seq END,
	last_seq = CASE WHEN excluded.last_seq > calls.last_seq THEN excluded.last_seq ELSE calls.last_seq END,
	updated_at = excluded.updated_at`

// maxRowsPerStatement keeps a multi-row statement's parameters far below
// both engines' limits (PostgreSQL 65535, SQLite 32766).
const maxRowsPerStatement = 200

// rowsPerStatement is how many rows one INSERT of a batch carries. On
// PostgreSQL each statement is a round trip, so up to
// maxRowsPerStatement. SQLite runs in-process but the pure-Go build spends
// longer parsing a statement than running it, and a statement of each row
// count would be parsed anew: one row per statement, prepared once.
func (s *Store) rowsPerStatement() int {
	if s.d.name == dialectSQLite {
		return 1
	}
	return maxRowsPerStatement
}

// callUpsertOneSQL is the call upsert of one row (prepareWrites).
var callUpsertOneSQL = callUpsertHead + "(" + placeholders(1, callColumns) + ")" + callUpsertTail

// applyCallEvents folds the batch's call.* events per call, then writes
// one upsert row per call: on PostgreSQL a statement per 200 calls, not
// one per event (each statement is a round trip).
func (s *Store) applyCallEvents(ctx context.Context, tx *sql.Tx, agentID string, enterpriseID int64, stored []StoredEvent) error {
	var (
		rows  []*callRow
		index = map[string]*callRow{}
	)
	for _, se := range stored {
		e := se.Event
		if e.CallID == "" || !strings.HasPrefix(e.Type, "call.") {
			continue // gap events belong to no call
		}
		r, ok := index[e.CallID]
		r = foldEvent(r, se)
		if !ok {
			index[e.CallID] = r
			rows = append(rows, r)
		}
	}
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), s.rowsPerStatement())]
		rows = rows[len(chunk):]
		args := make([]any, 0, len(chunk)*callColumns)
		for _, r := range chunk {
			args = append(args, enterpriseID, agentID, r.callID, r.status, r.direction, r.from, r.to, r.channel,
				s.d.timeArg(r.startedAt), s.d.timeArg(r.answeredAt), r.answeredBy, r.answeredChannel, s.d.timeArg(r.endedAt),
				optIntArg(r.cause), r.causeText, r.hungupBy, optIntArg(r.duration), optIntArg(r.billsec), r.monitored,
				r.firstSeq, r.lastSeq, s.d.timeArg(r.updatedAt))
		}
		if err := s.execRows(ctx, tx, callUpsertHead, callUpsertTail, callColumns, len(chunk), callUpsertOneSQL, args); err != nil {
			return fmt.Errorf("call history: %w", err)
		}
	}
	return nil
}

// execRows runs a multi-row statement, head + n rows of cols placeholders
// + tail, in tx: the prepared statement one when n is 1.
func (s *Store) execRows(ctx context.Context, tx *sql.Tx, head, tail string, cols, n int, one string, args []any) error {
	if n == 1 {
		return s.txExec(ctx, tx, one, args...)
	}
	var q strings.Builder
	q.WriteString(head)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(" + placeholders(i*cols+1, cols) + ")")
	}
	q.WriteString(tail)
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

func optIntArg(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

const callSelect = `SELECT id, enterprise_id, agent_id, call_id, status, direction, from_number, to_number, channel,
	started_at, answered_at, answered_by, answered_channel, ended_at, cause, cause_text, hungup_by, duration_s, billsec_s,
	monitored, first_seq, last_seq, updated_at FROM calls`

func scanCall(row interface{ Scan(...any) error }) (Call, error) {
	var (
		c               Call
		cause, dur, bil sql.NullInt64
	)
	err := row.Scan(&c.rowID, &c.EnterpriseID, &c.AgentID, &c.CallID, &c.Status, &c.Direction, &c.From, &c.To, &c.Channel,
		dbTime{&c.StartedAt}, dbTime{&c.AnsweredAt}, &c.AnsweredBy, &c.AnsweredChannel, dbTime{&c.EndedAt},
		&cause, &c.CauseText, &c.HungupBy, &dur, &bil, &c.Monitored, &c.FirstSeq, &c.LastSeq, dbTime{&c.UpdatedAt})
	c.Cause, c.DurationS, c.BillsecS = optInt(cause), optInt(dur), optInt(bil)
	return c, err
}

func optInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// CallFilter selects calls of one enterprise, newest first.
type CallFilter struct {
	EnterpriseID int64
	AgentID      string    // "" = every PBX
	Since, Until time.Time // started_at in [Since, Until); zero = unbounded
	Statuses     []string  // empty = every status
	Direction    string    // "" = every direction
	// Extension matches calls where it was the caller, the callee or the
	// extension that answered; Number matches the caller or the callee.
	Extension, Number string
	Cursor            string // from a previous page's next cursor
	Limit             int    // DefaultCallPageSize when 0, at most MaxCallPageSize
}

// Validate says what is wrong with the filter.
func (f CallFilter) Validate() error {
	for _, v := range []struct{ name, val string }{{"extension", f.Extension}, {"number", f.Number}, {"pbx", f.AgentID}} {
		if len(v.val) > MaxCallFilterLen {
			return invalid(v.name, "must be at most %d bytes", MaxCallFilterLen)
		}
	}
	if f.Limit < 0 {
		return invalid("limit", "must not be negative, got %d", f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return invalid("time range", "since must be before until")
	}
	for _, st := range f.Statuses {
		if !validCallStatus(st) {
			return invalid("status", "unknown status %q (want one of %s)", st, strings.Join(CallStatuses, ", "))
		}
	}
	if f.Cursor != "" {
		if _, _, err := decodeCallCursor(f.Cursor); err != nil {
			return err
		}
	}
	return nil
}

// CallStatuses lists every status a call can have.
var CallStatuses = []string{protocol.CallQueued, protocol.CallRinging, protocol.CallInProgress, protocol.CallCompleted,
	protocol.CallBusy, protocol.CallFailed, protocol.CallNoAnswer, protocol.CallCanceled}

func validCallStatus(s string) bool {
	for _, v := range CallStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// The cursor is the last row's (started_at, id): keyset pagination stays
// correct while new calls arrive at the head.
func encodeCallCursor(c Call) string {
	raw := strconv.FormatInt(c.StartedAt.UnixMicro(), 10) + "." + strconv.FormatInt(c.rowID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCallCursor(cur string) (time.Time, int64, error) {
	bad := invalid("cursor", "not a cursor this server returned")
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		return time.Time{}, 0, bad
	}
	a, b, ok := strings.Cut(string(raw), ".")
	us, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || id <= 0 {
		return time.Time{}, 0, bad
	}
	return time.UnixMicro(us).UTC(), id, nil
}

// ListCalls returns a page of calls, newest started first, and the cursor
// of the next page ("" when this is the last).
func (s *Store) ListCalls(ctx context.Context, f CallFilter) ([]Call, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultCallPageSize
	}
	limit = min(limit, MaxCallPageSize)
	q := callSelect + ` WHERE enterprise_id = $1`
	args := []any{f.EnterpriseID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.AgentID != "" {
		q += ` AND agent_id = ` + arg(f.AgentID)
	}
	if !f.Since.IsZero() {
		q += ` AND started_at >= ` + arg(s.d.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND started_at < ` + arg(s.d.timeArg(f.Until))
	}
	if f.Direction != "" {
		q += ` AND direction = ` + arg(f.Direction)
	}
	if len(f.Statuses) > 0 {
		ph := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ph[i] = arg(st)
		}
		q += ` AND status IN (` + strings.Join(ph, ", ") + `)`
	}
	if f.Extension != "" {
		p := arg(f.Extension)
		q += ` AND (from_number = ` + p + ` OR to_number = ` + p + ` OR answered_by = ` + p + `)`
	}
	if f.Number != "" {
		p := arg(f.Number)
		q += ` AND (from_number = ` + p + ` OR to_number = ` + p + `)`
	}
	if f.Cursor != "" {
		at, id, _ := decodeCallCursor(f.Cursor)
		pa, pi := arg(s.d.timeArg(at)), arg(id)
		q += ` AND (started_at < ` + pa + ` OR (started_at = ` + pa + ` AND id < ` + pi + `))`
	}
	q += ` ORDER BY started_at DESC, id DESC LIMIT ` + arg(limit+1)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list calls: %w", err)
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list calls: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list calls: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCallCursor(out[limit-1])
	}
	return out, next, nil
}

// CallByID returns the enterprise's call with this id; agentID narrows it
// to one PBX ("" = the most recently started of any PBX, since two PBXs
// may reuse a uniqueid). ErrNotFound otherwise, also for a call of
// another enterprise.
func (s *Store) CallByID(ctx context.Context, enterpriseID int64, agentID, callID string) (Call, error) {
	if callID == "" || len(callID) > MaxCallFilterLen {
		return Call{}, fmt.Errorf("call %q: %w", callID, ErrNotFound)
	}
	q := callSelect + ` WHERE enterprise_id = $1 AND call_id = $2`
	args := []any{enterpriseID, callID}
	if agentID != "" {
		q += ` AND agent_id = $3`
		args = append(args, agentID)
	}
	c, err := scanCall(s.db.QueryRowContext(ctx, q+` ORDER BY started_at DESC, id DESC LIMIT 1`, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Call{}, fmt.Errorf("call %q: %w", callID, ErrNotFound)
	}
	if err != nil {
		return Call{}, fmt.Errorf("call %q: %w", callID, err)
	}
	return c, nil
}

// OldestEventSeq is the smallest event sequence the enterprise still has
// (0 when it has none): a client resuming from before it has lost events
// to retention.
func (s *Store) OldestEventSeq(ctx context.Context, enterpriseID int64) (int64, error) {
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(seq) FROM events WHERE enterprise_id = $1`, enterpriseID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("oldest event seq: %w", err)
	}
	return seq.Int64, nil
}

// DefaultPruneChunk is how many rows one prune statement deletes, so a
// large backlog never holds SQLite's write lock for long.
const DefaultPruneChunk = 5000

// PruneEvents deletes events received before t, in chunks; it returns how
// many went.
func (s *Store) PruneEvents(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneChunks(ctx, "events", `DELETE FROM events WHERE (enterprise_id, seq) IN
		(SELECT enterprise_id, seq FROM events WHERE received_at < $1 LIMIT $2)`, t)
}

// PruneCalls deletes calls started before t.
func (s *Store) PruneCalls(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneChunks(ctx, "calls", `DELETE FROM calls WHERE id IN
		(SELECT id FROM calls WHERE started_at < $1 LIMIT $2)`, t)
}

func (s *Store) pruneChunks(ctx context.Context, what, q string, t time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.wdb.ExecContext(ctx, q, s.d.timeArg(t), DefaultPruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", what, err)
		}
		total += n
		if n < DefaultPruneChunk {
			return total, nil
		}
	}
}
