package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Claim says how many due deliveries to take and how fairly.
type Claim struct {
	// Limit is the most deliveries to take now (the caller's free
	// slots); Lease hides them from other workers (other replicas) that
	// long, after which they are due again if the worker died.
	Limit int
	Lease time.Duration
	// PerWebhook and PerEnterprise cap the deliveries in flight, leased
	// and not finished, for one webhook and for one enterprise, counted
	// across every worker and replica; 0: no cap.
	PerWebhook    int
	PerEnterprise int
	// ProbeAfter: a webhook with at least this many consecutive failed
	// attempts gets one delivery in flight at a time until one succeeds;
	// 0: off.
	ProbeAfter int
}

// ClaimReport says which caps held deliveries back in a claim: webhooks
// and enterprises that had due deliveries but no room for one more.
type ClaimReport struct {
	WebhooksAtCap    int
	EnterprisesAtCap int
}

// claimLockKey serialises claims between replicas on PostgreSQL
// ("SwBdWhkC"), so the caps count every delivery in flight exactly.
const claimLockKey int64 = 0x537742645768_6b43

// ClaimDeliveries leases up to c.Limit due pending deliveries, round robin
// over webhooks: the oldest due delivery of each webhook first (the
// webhook whose oldest is oldest first), then the second of each, and so
// on, so one webhook's backlog cannot starve the others. A webhook or enterprise at its cap, and a suspended webhook,
// get nothing. On PostgreSQL claims of several replicas are serialised by
// a transaction-scoped advisory lock and rows are taken FOR UPDATE SKIP
// LOCKED; the lease (leased_until) lets a row come back if its worker
// dies.
func (s *Store) ClaimDeliveries(ctx context.Context, c Claim) ([]Delivery, ClaimReport, error) {
	var rep ClaimReport
	if c.Limit <= 0 || c.Lease <= 0 || c.PerWebhook < 0 || c.PerEnterprise < 0 || c.ProbeAfter < 0 {
		return nil, rep, invalid("claim", "limit and lease must be positive, caps not negative")
	}
	now := s.now()
	// Most claims find nothing (the worker is woken by every stored batch,
	// webhooks or not): say so from the read pool, without the write
	// transaction (SQLite's one writer, PostgreSQL's claim lock).
	var due bool
	if err := s.queryRow(ctx, s.db, `SELECT EXISTS (SELECT 1 FROM webhooks w
		WHERE (w.suspended_until IS NULL OR w.suspended_until <= $1) AND EXISTS (SELECT 1 FROM webhook_deliveries d
			WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= $1
			AND (d.leased_until IS NULL OR d.leased_until <= $1)))`, s.d.timeArg(now)).Scan(&due); err != nil {
		return nil, rep, fmt.Errorf("claim deliveries: %w", err)
	}
	if !due {
		return nil, rep, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, rep, fmt.Errorf("claim deliveries: %w", err)
	}
	defer tx.Rollback()
	if s.d.name == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, claimLockKey); err != nil {
			return nil, rep, fmt.Errorf("claim deliveries: lock: %w", err)
		}
	}
	cl := &claimer{s: s, c: c, now: now, entBusy: map[int64]int{}}
	ids, rep, err := cl.pick(ctx, tx)
	if err != nil || len(ids) == 0 {
		return nil, rep, err
	}
	if ids, err = s.lease(ctx, tx, ids, now, c.Lease); err != nil || len(ids) == 0 {
		return nil, rep, err
	}
	out, err := s.claimedDeliveries(ctx, tx, ids)
	if err != nil {
		return nil, rep, err
	}
	if err := tx.Commit(); err != nil {
		return nil, rep, fmt.Errorf("claim deliveries: commit: %w", err)
	}
	return out, rep, nil
}

// claimer picks deliveries within the caps.
type claimer struct {
	s   *Store
	c   Claim
	now time.Time
	// Deliveries in flight now, by enterprise.
	entBusy map[int64]int
}

// pick returns the ids to claim: round robin over the webhooks with due
// deliveries and room under their caps, the one with the oldest due
// delivery first.
//
// It starts from the webhooks, not the deliveries: a webhook's oldest due
// delivery and its deliveries in flight are index probes, and a suspended
// or capped webhook's backlog, however long, is never scanned.
func (cl *claimer) pick(ctx context.Context, tx *sql.Tx) ([]int64, ClaimReport, error) {
	hooks, rep, err := cl.eligible(ctx, tx)
	if err != nil || len(hooks) == 0 {
		return nil, rep, err
	}
	rows, err := cl.dueRows(ctx, tx, hooks)
	if err != nil {
		return nil, rep, err
	}
	atCapEnt := map[int64]bool{}
	var ids []int64
	for round := 0; len(ids) < cl.c.Limit; round++ {
		took := false
		for _, h := range hooks {
			if round >= len(rows[h.id]) || round >= h.room || len(ids) >= cl.c.Limit {
				continue
			}
			if cl.c.PerEnterprise > 0 && cl.entBusy[h.ent] >= cl.c.PerEnterprise {
				atCapEnt[h.ent] = true
				continue
			}
			cl.entBusy[h.ent]++
			ids = append(ids, rows[h.id][round])
			took = true
		}
		if !took {
			break
		}
	}
	rep.EnterprisesAtCap += len(atCapEnt)
	return ids, rep, nil
}

// claimHook is a webhook with due deliveries and room for more in flight.
type claimHook struct {
	id   string
	ent  int64
	room int // deliveries it may take now
	due  time.Time
}

// eligible reads every webhook's deliveries in flight (for the caps,
// suspended webhooks' too) and its oldest pending delivery, and lists
// those not suspended whose oldest is due, with room under their caps,
// oldest due first. Inside the claim's transaction (and lock), so the
// counts are exact.
func (cl *claimer) eligible(ctx context.Context, tx *sql.Tx) ([]claimHook, ClaimReport, error) {
	var rep ClaimReport
	rows, err := tx.QueryContext(ctx, `SELECT id, enterprise_id, failures, suspended_until,
		(SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending'),
		(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.leased_until > $1 AND d.status = 'pending')
		FROM webhooks w`, cl.s.d.timeArg(cl.now))
	if err != nil {
		return nil, rep, fmt.Errorf("claim deliveries: webhooks: %w", err)
	}
	defer rows.Close()
	var hooks []claimHook
	for rows.Next() {
		var (
			h              claimHook
			failures, busy int
			suspendedUntil time.Time
		)
		if err := rows.Scan(&h.id, &h.ent, &failures, dbTime{&suspendedUntil}, dbTime{&h.due}, &busy); err != nil {
			return nil, rep, fmt.Errorf("claim deliveries: webhooks: %w", err)
		}
		cl.entBusy[h.ent] += busy
		if suspendedUntil.After(cl.now) || h.due.IsZero() || h.due.After(cl.now) {
			continue
		}
		limit := cl.c.PerWebhook
		if cl.c.ProbeAfter > 0 && failures >= cl.c.ProbeAfter {
			limit = 1 // probing a failing receiver: one at a time
		}
		h.room = cl.c.Limit
		if limit > 0 {
			h.room = min(h.room, limit-busy)
		}
		if h.room <= 0 {
			rep.WebhooksAtCap++
			continue
		}
		hooks = append(hooks, h)
	}
	if err := rows.Err(); err != nil {
		return nil, rep, fmt.Errorf("claim deliveries: webhooks: %w", err)
	}
	slices.SortFunc(hooks, func(a, b claimHook) int { return a.due.Compare(b.due) })
	// Each claimed delivery goes to a distinct webhook in the first round,
	// so more webhooks than Limit cannot all be served now; the others'
	// oldest deliveries are older next time.
	if len(hooks) > cl.c.Limit {
		hooks = hooks[:cl.c.Limit]
	}
	return hooks, rep, nil
}

// dueRows reads up to room due, unleased deliveries of each webhook,
// oldest first: one index range per webhook, in one statement.
func (cl *claimer) dueRows(ctx context.Context, tx *sql.Tx, hooks []claimHook) (map[string][]int64, error) {
	args := []any{cl.s.d.timeArg(cl.now)}
	parts := make([]string, len(hooks))
	for i, h := range hooks {
		args = append(args, h.id, h.room)
		parts[i] = fmt.Sprintf(`SELECT * FROM (SELECT id, webhook_id FROM webhook_deliveries
			WHERE webhook_id = $%d AND status = 'pending' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)
			ORDER BY next_attempt_at, id LIMIT $%d) AS h%d`, len(args)-1, len(args), i)
	}
	rows, err := tx.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: due: %w", err)
	}
	defer rows.Close()
	out := map[string][]int64{}
	for rows.Next() {
		var (
			id   int64
			hook string
		)
		if err := rows.Scan(&id, &hook); err != nil {
			return nil, fmt.Errorf("claim deliveries: due: %w", err)
		}
		out[hook] = append(out[hook], id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: due: %w", err)
	}
	return out, nil
}

// lease takes the rows still claimable and leases them until now+lease:
// on PostgreSQL it locks them first FOR UPDATE SKIP LOCKED (a row another
// transaction holds, finishing an attempt or deleting its webhook, is
// left alone); SQLite has one writer, so one UPDATE … RETURNING does.
func (s *Store) lease(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time, lease time.Duration) ([]int64, error) {
	due := ` AND status = 'pending' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)`
	if s.d.name == dialectPostgres {
		args, in := inList([]any{s.d.timeArg(now)}, ids)
		var err error
		if ids, err = queryIDs(ctx, tx, `SELECT id FROM webhook_deliveries WHERE id `+in+due+` ORDER BY id FOR UPDATE SKIP LOCKED`, args...); err != nil || len(ids) == 0 {
			return nil, err
		}
	}
	args, in := inList([]any{s.d.timeArg(now), s.d.timeArg(now.Add(lease))}, ids)
	return queryIDs(ctx, tx, `UPDATE webhook_deliveries SET leased_until = $2 WHERE id `+in+due+` RETURNING id`, args...)
}

func queryIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: lease: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("claim deliveries: lease: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: lease: %w", err)
	}
	return out, nil
}

// claimedDeliveries reads what the worker needs to send each delivery:
// the webhook's URL and secret, and the event (nil when pruned).
func (s *Store) claimedDeliveries(ctx context.Context, tx *sql.Tx, ids []int64) ([]Delivery, error) {
	args, in := inList(nil, ids)
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.webhook_id, d.enterprise_id, d.seq, d.event_type, d.attempts, d.created_at,
		w.url, w.secret, ev.agent_id, ev.received_at, ev.body
		FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
		LEFT JOIN events ev ON ev.enterprise_id = d.enterprise_id AND ev.seq = d.seq
		WHERE d.id `+in+` ORDER BY d.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	out := make([]Delivery, 0, len(ids))
	for rows.Next() {
		var (
			d              Delivery
			agent, body    sql.NullString
			receivedAt     time.Time
			webhookURL, sk string
		)
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.EnterpriseID, &d.Seq, &d.EventType, &d.Attempts, dbTime{&d.CreatedAt},
			&webhookURL, &sk, &agent, dbTime{&receivedAt}, &body); err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		d.Status = DeliveryPending
		d.Webhook = Webhook{ID: d.WebhookID, EnterpriseID: d.EnterpriseID, URL: webhookURL, Secret: sk}
		if body.Valid {
			se := StoredEvent{EnterpriseID: d.EnterpriseID, Seq: d.Seq, AgentID: agent.String, ReceivedAt: receivedAt}
			if err := json.Unmarshal([]byte(body.String), &se.Event); err != nil {
				return nil, fmt.Errorf("claim deliveries: decode event %d: %w", d.Seq, err)
			}
			d.Event = &se
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}
