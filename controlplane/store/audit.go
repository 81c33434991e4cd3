package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit actors and results, as stored.
const (
	ActorAPIKey   = "api_key"
	ActorOperator = "operator"
	ActorSystem   = "system"

	ResultSuccess = "success"
	ResultError   = "error"

	// ErrorOutcomeUnknown is the error code of a row made from an intent
	// whose outcome was never written (the control plane stopped between
	// sending the request to the PBX and storing its answer).
	ErrorOutcomeUnknown = "outcome_unknown"
)

// Audit limits.
const (
	// MaxAuditFieldLen: longer text fields (a caller-supplied reason, say)
	// are cut to this many bytes rather than refused: losing the audit row
	// of a call that already happened would be worse.
	MaxAuditFieldLen = 1024
	// MaxAuditDetailsLen bounds the Details JSON; larger is a caller bug
	// and is refused.
	MaxAuditDetailsLen = 16 << 10
	// DefaultAuditPageSize is ListAudit's page size when limit is 0;
	// MaxAuditPageSize caps larger limits.
	DefaultAuditPageSize = 50
	MaxAuditPageSize     = 500
)

// AuditEntry is one mutating call, successful or not.
type AuditEntry struct {
	ID           int64     // assigned by InsertAudit; increases with every row
	At           time.Time // zero: InsertAudit uses the store's clock
	EnterpriseID int64     // 0: not tied to an enterprise (stored as NULL)
	ActorType    string    // ActorAPIKey, ActorOperator or ActorSystem
	ActorID      string    // key id, operator id, or component name
	Action       string    // e.g. "asterisk_hangup_call"
	AgentID      string    // the PBX the call went to
	Channel      string
	UniqueID     string
	FromExt      string
	ToNumber     string
	Reason       string
	Result       string // ResultSuccess or ResultError
	ErrorCode    string
	RequestID    string
	ClientAddr   string
	Details      json.RawMessage // optional JSON object
	// IntentID names the intent (InsertAuditIntent) this row is the
	// outcome of; storing the row deletes the intent.
	IntentID int64 `json:"-"`
}

// cleanText makes caller-supplied text storable in both engines:
// PostgreSQL refuses invalid UTF-8 and NUL bytes in TEXT.
func cleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > MaxAuditFieldLen {
		cut := MaxAuditFieldLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func (e *AuditEntry) normalize(now time.Time) error {
	switch e.ActorType {
	case ActorAPIKey, ActorOperator, ActorSystem:
	default:
		return invalid("audit actor type", "must be %q, %q or %q, got %q", ActorAPIKey, ActorOperator, ActorSystem, e.ActorType)
	}
	switch e.Result {
	case ResultSuccess, ResultError:
	default:
		return invalid("audit result", "must be %q or %q, got %q", ResultSuccess, ResultError, e.Result)
	}
	if strings.TrimSpace(e.Action) == "" {
		return invalid("audit action", "must not be empty")
	}
	if len(e.Details) > 0 {
		if len(e.Details) > MaxAuditDetailsLen {
			return invalid("audit details", "must be at most %d bytes, got %d", MaxAuditDetailsLen, len(e.Details))
		}
		if !json.Valid(e.Details) {
			return invalid("audit details", "must be valid JSON")
		}
	}
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	for _, p := range []*string{&e.ActorID, &e.Action, &e.AgentID, &e.Channel, &e.UniqueID, &e.FromExt,
		&e.ToNumber, &e.Reason, &e.ErrorCode, &e.RequestID, &e.ClientAddr} {
		*p = cleanText(*p)
	}
	return nil
}

// InsertAudit appends an entry and returns it as stored (ID and At set).
// It returns once the row is committed, past ctx's deadline if need be:
// an audit row records something that happened, and a deadline only
// turned a slow store into lost rows (1,869 of 10,000 calls at 1,000/s
// with PostgreSQL on the same two cores, waiting for the writer). The
// writer bounds each transaction itself (30 s on PostgreSQL, the busy
// timeout on SQLite: writerCtx) and a closing store
// refuses new rows. Concurrent inserts are committed together (group
// commit): on SQLite every commit is an fsync on the one write
// connection, so one transaction per API request would cap the request
// rate at the disk's fsync rate.
func (s *Store) InsertAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if err := e.normalize(s.now()); err != nil {
		return AuditEntry{}, err
	}
	res, err := s.auditWrite(auditReq{e: e, done: make(chan auditRes, 1)})
	return res.e, err
}

// QueueAudit hands an entry to the audit writer and returns without
// waiting for its commit: for the outcome row of a request, written after
// the reply so that the caller's next request does not wait for it. What
// must be durable before a PBX acts is the intent (InsertAuditIntent);
// queued rows are written before Close returns, and a row the store
// refuses is logged at error level.
func (s *Store) QueueAudit(e AuditEntry) error {
	if err := e.normalize(s.now()); err != nil {
		return err
	}
	_, err := s.auditWrite(auditReq{e: e})
	return err
}

// InsertAuditIntent stores the intent of a request about to act on a PBX
// and returns its id once it is committed (grouped with other audit
// writes). e is the row a crash before the outcome leaves behind: it is
// stored with result error and code ErrorOutcomeUnknown.
func (s *Store) InsertAuditIntent(ctx context.Context, e AuditEntry) (int64, error) {
	e.Result, e.ErrorCode = ResultError, ErrorOutcomeUnknown
	if err := e.normalize(s.now()); err != nil {
		return 0, err
	}
	res, err := s.auditWrite(auditReq{e: e, intent: true, done: make(chan auditRes, 1)})
	return res.e.ID, err
}

// auditWrite queues r and, when r.done is set, waits for its result.
func (s *Store) auditWrite(r auditReq) (auditRes, error) {
	s.auditOnce.Do(s.startAuditWriter)
	// Close takes the write lock before it stops the writer, so a write
	// handed over here is always drained, never stranded in the queue.
	s.auditMu.RLock()
	if s.auditClosed {
		s.auditMu.RUnlock()
		return auditRes{}, fmt.Errorf("audit: %w", ErrClosed)
	}
	s.auditq <- r
	s.auditMu.RUnlock()
	if r.done == nil {
		return auditRes{}, nil
	}
	res := <-r.done
	return res, res.err
}

// ResolveAuditIntents turns intents older than before, whose outcome was
// never stored, into audit rows (result error, code ErrorOutcomeUnknown)
// and returns how many. before must leave every request still running
// alone: any intent older than the longest request (the AMI timeout is at
// most a minute) was left by a control plane that stopped.
func (s *Store) ResolveAuditIntents(ctx context.Context, before time.Time) (int, error) {
	rows, err := s.wdb.QueryContext(ctx, `SELECT id, entry FROM audit_intents WHERE at < $1 ORDER BY id LIMIT 1000`, s.d.timeArg(before.UTC()))
	if err != nil {
		return 0, fmt.Errorf("resolve audit intents: %w", err)
	}
	var batch []auditReq
	for rows.Next() {
		var id int64
		var entry string
		if err := rows.Scan(&id, &entry); err != nil {
			rows.Close()
			return 0, fmt.Errorf("resolve audit intents: %w", err)
		}
		var e AuditEntry
		if err := json.Unmarshal([]byte(entry), &e); err != nil {
			s.log.Error("audit intent unreadable: kept", "intent", id, "err", err)
			continue
		}
		e.IntentID = id
		batch = append(batch, auditReq{e: e, done: make(chan auditRes, 1)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("resolve audit intents: %w", err)
	}
	n := 0
	for _, r := range batch {
		if _, err := s.auditWrite(r); err != nil {
			return n, fmt.Errorf("resolve audit intent %d: %w", r.e.IntentID, err)
		}
		n++
	}
	return n, nil
}

// MaxAuditBatch bounds the rows of one group commit.
const MaxAuditBatch = 256

type auditReq struct {
	e AuditEntry
	// intent: store e as an intent (audit_intents), not a row.
	intent bool
	// done receives the result; nil: nobody waits (QueueAudit), and a
	// failure is logged.
	done chan auditRes
}

func (r auditReq) reply(res auditRes, log *slog.Logger) {
	if r.done != nil {
		r.done <- res
		return
	}
	if res.err != nil {
		log.Error("audit row not stored", "action", r.e.Action, "result", r.e.Result, "request_id", r.e.RequestID, "err", res.err)
	}
}

type auditRes struct {
	e   AuditEntry
	err error
}

// auditLinger is how long rows nobody waits for (QueueAudit: outcomes,
// written after the reply) wait for a write somebody does wait for. A
// client sends its next request right after a reply: that request's
// intent then commits together with the previous outcome, one commit (one
// fsync on SQLite) instead of two in a row.
const auditLinger = 3 * time.Millisecond

func (s *Store) startAuditWriter() {
	s.auditWG.Add(1)
	go func() {
		defer s.auditWG.Done()
		groupLoop(s.auditq, s.auditStop, MaxAuditBatch, s.lingerAudit(s.writeAuditBatch))
	}()
}

// lingerAudit holds a group of rows nobody waits for up to auditLinger,
// for a row somebody waits for to join it.
func (s *Store) lingerAudit(write func([]auditReq)) func([]auditReq) {
	return func(group []auditReq) {
		for _, r := range group {
			if r.done != nil {
				write(group)
				return
			}
		}
		t := time.NewTimer(auditLinger)
		defer t.Stop()
		for len(group) < MaxAuditBatch {
			select {
			case r := <-s.auditq:
				group = append(group, r)
				if r.done != nil {
					write(group)
					return
				}
			case <-t.C:
				write(group)
				return
			case <-s.auditStop:
				write(group)
				return
			}
		}
		write(group)
	}
}

// groupLoop is a group commit: it waits for one request, takes every
// request already queued behind it (at most max), and hands the group to
// write, until stop is closed. Requests that arrive while write runs form
// the next group, so under load one transaction serves many callers.
func groupLoop[T any](q <-chan T, stop <-chan struct{}, max int, write func([]T)) {
	group := make([]T, 0, max)
	for {
		select {
		case r := <-q:
			group = append(group[:0], r)
		case <-stop:
			drain(q, max, write)
			return
		}
	collect:
		for len(group) < max {
			select {
			case r := <-q:
				group = append(group, r)
			default:
				break collect
			}
		}
		write(group)
	}
}

// drain writes what is still queued when the writer stops: rows handed
// over without waiting (QueueAudit) are written before Close returns.
func drain[T any](q <-chan T, max int, write func([]T)) {
	for {
		group := make([]T, 0, max)
	collect:
		for len(group) < max {
			select {
			case r := <-q:
				group = append(group, r)
			default:
				break collect
			}
		}
		if len(group) == 0 {
			return
		}
		write(group)
	}
}

// writerTimeout bounds one group commit of the writer goroutines on
// PostgreSQL, where a statement waits on the network.
const writerTimeout = 30 * time.Second

// writerCtx is the context of one group commit of the writer goroutines.
// On SQLite it cannot end: a statement there never waits on a network, a
// wait for the file's lock is bounded by the busy timeout, and the pure-Go
// driver starts a goroutine per statement to watch a context that can end
// (a dozen per event batch; perf of serve showed their scheduling).
func (s *Store) writerCtx() (context.Context, context.CancelFunc) {
	if s.d.name == dialectSQLite {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), writerTimeout)
}

// writeAuditBatch commits the batch in one transaction; if that fails, each
// row is retried alone so one bad row cannot sink the others.
func (s *Store) writeAuditBatch(batch []auditReq) {
	// Writes must finish even while the store is closing: Close waits.
	ctx, cancel := s.writerCtx()
	defer cancel()
	if len(batch) > 1 {
		ids, err := s.insertAuditTx(ctx, batch)
		if err == nil {
			for i, r := range batch {
				r.e.ID = ids[i]
				r.reply(auditRes{e: r.e}, s.log)
			}
			return
		}
	}
	for _, r := range batch {
		ids, err := s.insertAuditTx(ctx, []auditReq{r})
		if err != nil {
			r.reply(auditRes{err: err}, s.log)
			continue
		}
		r.e.ID = ids[0]
		r.reply(auditRes{e: r.e}, s.log)
	}
}

// The audit writer's statements, prepared once (prepareWrites).
const (
	insertAuditIntentSQL = `INSERT INTO audit_intents (at, entry) VALUES ($1, $2) RETURNING id`
	deleteAuditIntentSQL = `DELETE FROM audit_intents WHERE id = $1`
	insertAuditSQL       = `INSERT INTO audit_log
		(at, enterprise_id, actor_type, actor_id, action, agent_id, channel, uniqueid, from_ext, to_number,
		 reason, result, error_code, request_id, client_addr, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`
)

func (s *Store) insertAuditTx(ctx context.Context, batch []auditReq) ([]int64, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("insert audit: %w", err)
	}
	defer tx.Rollback()
	ids := make([]int64, len(batch))
	for i, r := range batch {
		if ids[i], err = s.insertAuditIn(ctx, tx, r); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("insert audit: commit: %w", err)
	}
	return ids, nil
}

// insertAuditIn stores one intent, or one row (deleting the intent it
// replaces), in tx.
func (s *Store) insertAuditIn(ctx context.Context, tx *sql.Tx, r auditReq) (int64, error) {
	e := r.e
	var id int64
	if r.intent {
		entry, err := json.Marshal(e)
		if err != nil {
			return 0, fmt.Errorf("insert audit intent: %w", err)
		}
		if err := s.txQueryRow(ctx, tx, insertAuditIntentSQL, s.d.timeArg(e.At), string(entry)).Scan(&id); err != nil {
			return 0, fmt.Errorf("insert audit intent: %w", err)
		}
		return id, nil
	}
	if e.IntentID != 0 {
		if err := s.txExec(ctx, tx, deleteAuditIntentSQL, e.IntentID); err != nil {
			return 0, fmt.Errorf("insert audit: delete intent: %w", err)
		}
	}
	var details any
	if len(e.Details) > 0 {
		details = string(e.Details)
	}
	err := s.txQueryRow(ctx, tx, insertAuditSQL, s.d.timeArg(e.At), nullID(e.EnterpriseID), e.ActorType, e.ActorID, e.Action, nullString(e.AgentID),
		nullString(e.Channel), nullString(e.UniqueID), nullString(e.FromExt), nullString(e.ToNumber),
		nullString(e.Reason), e.Result, nullString(e.ErrorCode), nullString(e.RequestID),
		nullString(e.ClientAddr), details).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert audit: %w", err)
	}
	return id, nil
}

const auditColumns = `id, at, enterprise_id, actor_type, actor_id, action, agent_id, channel, uniqueid,
	from_ext, to_number, reason, result, error_code, request_id, client_addr, details`

// ListAudit returns one page of audit entries, newest first, for one
// enterprise (or all when enterpriseID is 0). cursor is "" for the first
// page, then the next value returned; next is "" after the last page.
// limit 0 means DefaultAuditPageSize; above MaxAuditPageSize it is capped.
func (s *Store) ListAudit(ctx context.Context, enterpriseID int64, cursor string, limit int) (entries []AuditEntry, next string, err error) {
	var before int64
	if cursor != "" {
		before, err = strconv.ParseInt(cursor, 10, 64)
		if err != nil || before <= 0 {
			return nil, "", invalid("audit cursor", "%q is not a cursor returned by ListAudit", cursor)
		}
	}
	switch {
	case limit < 0:
		return nil, "", invalid("audit page size", "must not be negative, got %d", limit)
	case limit == 0:
		limit = DefaultAuditPageSize
	case limit > MaxAuditPageSize:
		limit = MaxAuditPageSize
	}
	var conds []string
	var args []any
	if enterpriseID != 0 {
		args = append(args, enterpriseID)
		conds = append(conds, fmt.Sprintf("enterprise_id = $%d", len(args)))
	}
	if before != 0 {
		args = append(args, before)
		conds = append(conds, fmt.Sprintf("id < $%d", len(args)))
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, limit+1) // one more than asked tells whether a next page exists
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))

	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e AuditEntry
		var entID optID
		var details string
		if err := rows.Scan(&e.ID, dbTime{&e.At}, &entID, &e.ActorType, &e.ActorID, &e.Action,
			optString{&e.AgentID}, optString{&e.Channel}, optString{&e.UniqueID}, optString{&e.FromExt},
			optString{&e.ToNumber}, optString{&e.Reason}, &e.Result, optString{&e.ErrorCode},
			optString{&e.RequestID}, optString{&e.ClientAddr}, optString{&details}); err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		e.EnterpriseID = int64(entID)
		if details != "" {
			e.Details = json.RawMessage(details)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	if len(entries) > limit {
		entries = entries[:limit]
		next = strconv.FormatInt(entries[limit-1].ID, 10)
	}
	return entries, next, nil
}

// HangupAttempt is a failed hangup, kept apart from the audit log so
// failures can be reviewed on their own (as the legacy service did).
type HangupAttempt struct {
	ID           int64
	At           time.Time // zero: the store's clock
	EnterpriseID int64     // 0: none (NULL)
	ActorID      string
	AgentID      string
	Channel      string
	UniqueID     string
	Reason       string
	ErrorCode    string // required, e.g. "channel_not_found"
	Message      string
	RequestID    string
}

// InsertHangupAttempt records a failed hangup and returns it as stored.
func (s *Store) InsertHangupAttempt(ctx context.Context, h HangupAttempt) (HangupAttempt, error) {
	if strings.TrimSpace(h.ErrorCode) == "" {
		return HangupAttempt{}, invalid("hangup attempt error code", "must not be empty")
	}
	if h.At.IsZero() {
		h.At = s.now()
	}
	h.At = h.At.UTC().Truncate(time.Microsecond)
	for _, p := range []*string{&h.ActorID, &h.AgentID, &h.Channel, &h.UniqueID, &h.Reason, &h.ErrorCode, &h.Message, &h.RequestID} {
		*p = cleanText(*p)
	}
	err := s.wdb.QueryRowContext(ctx, `INSERT INTO hangup_attempts
		(at, enterprise_id, actor_id, agent_id, channel, uniqueid, reason, error_code, message, request_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		s.d.timeArg(h.At), nullID(h.EnterpriseID), h.ActorID, nullString(h.AgentID), nullString(h.Channel),
		nullString(h.UniqueID), nullString(h.Reason), h.ErrorCode, nullString(h.Message), nullString(h.RequestID)).Scan(&h.ID)
	if err != nil {
		return HangupAttempt{}, fmt.Errorf("insert hangup attempt: %w", err)
	}
	return h, nil
}

// ListHangupAttempts returns up to limit failed hangups, newest first, of
// one enterprise (all when enterpriseID is 0). limit follows ListAudit's rules.
func (s *Store) ListHangupAttempts(ctx context.Context, enterpriseID int64, limit int) ([]HangupAttempt, error) {
	switch {
	case limit < 0:
		return nil, invalid("hangup attempts page size", "must not be negative, got %d", limit)
	case limit == 0:
		limit = DefaultAuditPageSize
	case limit > MaxAuditPageSize:
		limit = MaxAuditPageSize
	}
	q := `SELECT id, at, enterprise_id, actor_id, agent_id, channel, uniqueid, reason, error_code, message, request_id
		FROM hangup_attempts`
	args := []any{limit}
	if enterpriseID != 0 {
		q += ` WHERE enterprise_id = $2`
		args = append(args, enterpriseID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, fmt.Errorf("list hangup attempts: %w", err)
	}
	defer rows.Close()
	var out []HangupAttempt
	for rows.Next() {
		var h HangupAttempt
		var entID optID
		if err := rows.Scan(&h.ID, dbTime{&h.At}, &entID, &h.ActorID, optString{&h.AgentID}, optString{&h.Channel},
			optString{&h.UniqueID}, optString{&h.Reason}, &h.ErrorCode, optString{&h.Message}, optString{&h.RequestID}); err != nil {
			return nil, fmt.Errorf("list hangup attempts: %w", err)
		}
		h.EnterpriseID = int64(entID)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hangup attempts: %w", err)
	}
	return out, nil
}
