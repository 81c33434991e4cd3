package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook limits, checked before anything is written.
const (
	MaxWebhookURLLen         = 2048
	MinWebhookSecretLen      = 16
	MaxWebhookSecretLen      = 256
	MaxWebhookDescriptionLen = 200
	// MaxWebhooksPerEnterprise bounds the fan-out one event can cause.
	MaxWebhooksPerEnterprise = 20
	// MaxDeliveryErrorLen: an attempt's error text is cut to this.
	MaxDeliveryErrorLen = 512
	// DefaultDeliveryPageSize and MaxDeliveryPageSize bound
	// ListDeliveries.
	DefaultDeliveryPageSize = 50
	MaxDeliveryPageSize     = 500
	// maxAttemptsShown bounds the attempts listed per delivery.
	maxAttemptsShown = 50
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Webhook is an enterprise's subscription of a URL to its events.
type Webhook struct {
	ID           string // "whk_…"
	EnterpriseID int64
	URL          string
	Secret       string   // the HMAC key; shown to the caller only at creation
	EventTypes   []string // empty = every type
	AgentID      string   // "" = every PBX
	Description  string
	CreatedAt    time.Time
	// Failures counts the receiver's consecutive failed attempts;
	// SuspendedUntil, when in the future, holds its deliveries back (see
	// SuspendWebhook).
	Failures       int
	SuspendedUntil time.Time
}

// Wants reports whether the webhook subscribes to an event of this type
// from this PBX.
func (w Webhook) Wants(eventType, agentID string) bool {
	if w.AgentID != "" && w.AgentID != agentID {
		return false
	}
	return len(w.EventTypes) == 0 || slices.Contains(w.EventTypes, eventType)
}

// NewWebhookSecret returns a random signing secret.
func NewWebhookSecret() string { return "whsec_" + randomBase32(secretRandomBytes) }

// CreateWebhook stores a webhook. The caller validates the URL's scheme
// and target (SSRF rules are the events package's); the store checks
// lengths and characters. An empty Secret gets a random one.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	if w.EnterpriseID == 0 {
		return Webhook{}, invalid("enterprise", "is required")
	}
	if w.URL == "" || len(w.URL) > MaxWebhookURLLen || !visibleASCII(w.URL) {
		return Webhook{}, invalid("url", "must be 1-%d visible ASCII characters", MaxWebhookURLLen)
	}
	if w.Secret == "" {
		w.Secret = NewWebhookSecret()
	}
	if len(w.Secret) < MinWebhookSecretLen || len(w.Secret) > MaxWebhookSecretLen || !visibleASCII(w.Secret) {
		return Webhook{}, invalid("secret", "must be %d-%d visible ASCII characters", MinWebhookSecretLen, MaxWebhookSecretLen)
	}
	for _, t := range w.EventTypes {
		if t == "" || strings.ContainsAny(t, ", ") || len(t) > 64 {
			return Webhook{}, invalid("event_types", "bad event type %q", t)
		}
	}
	if !utf8.ValidString(w.Description) || utf8.RuneCountInString(w.Description) > MaxWebhookDescriptionLen {
		return Webhook{}, invalid("description", "must be valid UTF-8 of at most %d characters", MaxWebhookDescriptionLen)
	}
	w.Description = cleanText(w.Description)
	w.ID = "whk_" + randomBase32(idRandomBytes)
	w.CreatedAt = s.now()

	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks WHERE enterprise_id = $1`, w.EnterpriseID).Scan(&n); err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	if n >= MaxWebhooksPerEnterprise {
		return Webhook{}, fmt.Errorf("create webhook: %w: the enterprise already has %d webhooks (the limit)", ErrConflict, n)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, enterprise_id, url, secret, event_types, agent_id, description, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, w.ID, w.EnterpriseID, w.URL, w.Secret, strings.Join(w.EventTypes, ","),
		w.AgentID, w.Description, s.d.timeArg(w.CreatedAt)); err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	return w, nil
}

// placeholders returns "$from, $from+1, …" (n of them).
func placeholders(from, n int) string {
	ph := make([]string, n)
	for i := range ph {
		ph[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ph, ", ")
}

// inList appends vals to args and returns them with the IN list of their
// placeholders: "IN ($k, $k+1, …)".
func inList[T any](args []any, vals []T) ([]any, string) {
	from := len(args) + 1
	for _, v := range vals {
		args = append(args, v)
	}
	return args, "IN (" + placeholders(from, len(vals)) + ")"
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

const webhookSelect = `SELECT id, enterprise_id, url, secret, event_types, agent_id, description, created_at, failures, suspended_until FROM webhooks`

func scanWebhook(row interface{ Scan(...any) error }) (Webhook, error) {
	var (
		w     Webhook
		types string
	)
	err := row.Scan(&w.ID, &w.EnterpriseID, &w.URL, &w.Secret, &types, &w.AgentID, &w.Description, dbTime{&w.CreatedAt},
		&w.Failures, dbTime{&w.SuspendedUntil})
	if types != "" {
		w.EventTypes = strings.Split(types, ",")
	}
	return w, err
}

// ListWebhooks returns the enterprise's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, enterpriseID int64) ([]Webhook, error) {
	return s.listWebhooks(ctx, nil, enterpriseID)
}

// listWebhooksSQL is prepared once (prepareWrites): every event batch
// runs it.
const listWebhooksSQL = webhookSelect + ` WHERE enterprise_id = $1 ORDER BY created_at, id`

// listWebhooks reads the enterprise's webhooks in tx, or from the read
// pool when tx is nil.
func (s *Store) listWebhooks(ctx context.Context, tx *sql.Tx, enterpriseID int64) ([]Webhook, error) {
	var rows *sql.Rows
	var err error
	if tx == nil {
		rows, err = s.query(ctx, s.db, listWebhooksSQL, enterpriseID)
	} else {
		var st *sql.Stmt
		if st, err = s.txStmt(ctx, tx, listWebhooksSQL); err == nil {
			rows, err = st.QueryContext(ctx, enterpriseID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// WebhookByID returns the enterprise's webhook, or ErrNotFound (also for
// another enterprise's).
func (s *Store) WebhookByID(ctx context.Context, enterpriseID int64, id string) (Webhook, error) {
	w, err := scanWebhook(s.db.QueryRowContext(ctx, webhookSelect+` WHERE id = $1 AND enterprise_id = $2`, id, enterpriseID))
	if errors.Is(err, sql.ErrNoRows) {
		return Webhook{}, fmt.Errorf("webhook %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook %q: %w", id, err)
	}
	return w, nil
}

// DeleteWebhook deletes the enterprise's webhook with its deliveries
// (pending ones are not sent), or returns ErrNotFound.
func (s *Store) DeleteWebhook(ctx context.Context, enterpriseID int64, id string) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1 AND enterprise_id = $2`, id, enterpriseID)
	if err != nil {
		return fmt.Errorf("delete webhook %q: %w", id, err)
	}
	return requireRow(res, fmt.Sprintf("webhook %q", id))
}

// enqueueDeliveries writes one outbox row per (webhook, event) wanted,
// inside the events' transaction.
func (s *Store) enqueueDeliveries(ctx context.Context, tx *sql.Tx, agentID string, enterpriseID int64, stored []StoredEvent) error {
	hooks, err := s.listWebhooks(ctx, tx, enterpriseID)
	if err != nil {
		return fmt.Errorf("webhook outbox: %w", err)
	}
	if len(hooks) == 0 {
		return nil
	}
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		err := s.execRows(ctx, tx, insertDeliveriesHead, "", deliveryColumns, len(args)/deliveryColumns, insertDeliverySQL, args)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("webhook outbox: %w", err)
		}
		return nil
	}
	for _, se := range stored {
		for _, w := range hooks {
			if !w.Wants(se.Event.Type, agentID) {
				continue
			}
			at := s.d.timeArg(se.ReceivedAt)
			args = append(args, w.ID, enterpriseID, se.Seq, se.Event.Type, DeliveryPending, 0, at, at)
			if len(args) >= deliveryColumns*s.rowsPerStatement() {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

const (
	insertDeliveriesHead = `INSERT INTO webhook_deliveries (webhook_id, enterprise_id, seq, event_type, status, attempts, next_attempt_at, created_at) VALUES `
	deliveryColumns      = 8
)

// insertDeliverySQL is the outbox insert of one row (prepareWrites).
var insertDeliverySQL = insertDeliveriesHead + "(" + placeholders(1, deliveryColumns) + ")"

// Delivery is one (webhook, event) in the outbox.
type Delivery struct {
	ID             int64
	WebhookID      string
	EnterpriseID   int64
	Seq            int64 // the event's enterprise sequence
	EventType      string
	Status         string // DeliveryPending, DeliveryDelivered, DeliveryFailed
	Attempts       int
	NextAttemptAt  time.Time
	CreatedAt      time.Time
	FinishedAt     time.Time
	LastStatusCode int // 0: no HTTP answer
	LastError      string
	AttemptLog     []DeliveryAttempt // ListDeliveries only, oldest first

	// Filled by ClaimDeliveries: what to send and where.
	Webhook Webhook
	Event   *StoredEvent // nil when the event was pruned
}

// DeliveryAttempt is one HTTP POST of a delivery.
type DeliveryAttempt struct {
	Attempt    int
	At         time.Time
	Duration   time.Duration
	StatusCode int // 0: no HTTP answer
	Error      string
}

// AttemptOutcome is what FinishAttempt records: the attempt, and either
// Delivered, or Retry at a time, or neither (given up: failed).
type AttemptOutcome struct {
	Attempt   DeliveryAttempt
	Delivered bool
	RetryAt   time.Time // zero with Delivered false: give up
	// ReceiverFailed: the receiver did not answer 2xx (an error status,
	// a timeout, a refused connection). It counts towards the webhook's
	// consecutive failures; Delivered resets them and any suspension.
	// An attempt that failed on our side (its event was pruned) is
	// neither.
	ReceiverFailed bool
}

// WebhookHealth is a webhook's state after an attempt: its receiver's
// consecutive failed attempts, and whether it is suspended (failures of
// attempts started before a suspension are not counted: they are the
// same outage).
type WebhookHealth struct {
	Failures  int
	Suspended bool
}

// FinishAttempt records one attempt of a claimed delivery, its new state
// and the webhook's health, in one transaction, and returns that health.
// A delivery deleted meanwhile (its webhook was) is not an error.
func (s *Store) FinishAttempt(ctx context.Context, deliveryID int64, o AttemptOutcome) (WebhookHealth, error) {
	a := o.Attempt
	if len(a.Error) > MaxDeliveryErrorLen {
		a.Error = a.Error[:MaxDeliveryErrorLen]
	}
	a.Error = cleanText(a.Error)
	if a.At.IsZero() {
		a.At = s.now()
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return WebhookHealth{}, fmt.Errorf("finish delivery attempt: %w", err)
	}
	defer tx.Rollback()
	status, next, finished := DeliveryPending, o.RetryAt, time.Time{}
	switch {
	case o.Delivered:
		status, next, finished = DeliveryDelivered, a.At, s.now()
	case o.RetryAt.IsZero():
		status, next, finished = DeliveryFailed, a.At, s.now()
	}
	var code any
	if a.StatusCode != 0 {
		code = a.StatusCode
	}
	var webhookID string
	err = tx.QueryRowContext(ctx, `UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4,
		finished_at = $5, last_status_code = $6, last_error = $7, leased_until = NULL WHERE id = $1 AND status = 'pending'
		RETURNING webhook_id`,
		deliveryID, status, a.Attempt, s.d.timeArg(next), s.d.timeArg(finished), code, a.Error).Scan(&webhookID)
	if errors.Is(err, sql.ErrNoRows) {
		return WebhookHealth{}, nil // deleted with its webhook, or finished by another worker
	}
	if err != nil {
		return WebhookHealth{}, fmt.Errorf("finish delivery attempt: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, at, duration_ms, status_code, error)
		VALUES ($1, $2, $3, $4, $5, $6)`, deliveryID, a.Attempt, s.d.timeArg(a.At), a.Duration.Milliseconds(), code, a.Error); err != nil {
		return WebhookHealth{}, fmt.Errorf("finish delivery attempt: %w", err)
	}
	h, err := s.webhookHealth(ctx, tx, webhookID, o)
	if err != nil {
		return WebhookHealth{}, err
	}
	if err := tx.Commit(); err != nil {
		return WebhookHealth{}, fmt.Errorf("finish delivery attempt: commit: %w", err)
	}
	return h, nil
}

// webhookHealth counts the webhook's consecutive failed attempts.
func (s *Store) webhookHealth(ctx context.Context, tx *sql.Tx, webhookID string, o AttemptOutcome) (WebhookHealth, error) {
	q, args := `SELECT failures, suspended_until FROM webhooks WHERE id = $1`, []any{webhookID}
	switch {
	case o.Delivered:
		q = `UPDATE webhooks SET failures = 0, suspended_until = NULL WHERE id = $1 RETURNING failures, suspended_until`
	case o.ReceiverFailed:
		q = `UPDATE webhooks SET failures = failures +
			CASE WHEN suspended_until IS NOT NULL AND suspended_until > $2 THEN 0 ELSE 1 END
			WHERE id = $1 RETURNING failures, suspended_until`
		args = append(args, s.d.timeArg(s.now()))
	}
	var (
		h     WebhookHealth
		until time.Time
	)
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&h.Failures, dbTime{&until}); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return WebhookHealth{}, fmt.Errorf("finish delivery attempt: webhook health: %w", err)
	}
	h.Suspended = until.After(s.now())
	return h, nil
}

// SuspendWebhook holds every delivery of the webhook until `until`: its
// receiver keeps failing, and attempts that would time out would hold
// delivery slots other receivers need. A delivered attempt (the probe
// after the suspension) ends it early. A webhook already suspended is
// left as it is (several attempts of one outage fail at once), and
// SuspendWebhook reports false.
func (s *Store) SuspendWebhook(ctx context.Context, webhookID string, until time.Time) (bool, error) {
	res, err := s.wdb.ExecContext(ctx, `UPDATE webhooks SET suspended_until = $2
		WHERE id = $1 AND (suspended_until IS NULL OR suspended_until <= $3)`,
		webhookID, s.d.timeArg(until), s.d.timeArg(s.now()))
	if err != nil {
		return false, fmt.Errorf("suspend webhook %q: %w", webhookID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("suspend webhook %q: %w", webhookID, err)
	}
	return n == 1, nil
}

// DeliveryFilter selects deliveries of one webhook, newest first.
type DeliveryFilter struct {
	EnterpriseID int64
	WebhookID    string
	Status       string // "" = every status
	Before       int64  // cursor: only deliveries with id < Before
	Limit        int    // DefaultDeliveryPageSize when 0
}

// ListDeliveries returns a page of the webhook's deliveries with their
// attempts, newest first, and the cursor of the next page (0 when none).
// ErrNotFound when the webhook is not the enterprise's.
func (s *Store) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, int64, error) {
	if _, err := s.WebhookByID(ctx, f.EnterpriseID, f.WebhookID); err != nil {
		return nil, 0, err
	}
	switch f.Status {
	case "", DeliveryPending, DeliveryDelivered, DeliveryFailed:
	default:
		return nil, 0, invalid("status", "want pending, delivered or failed, got %q", f.Status)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultDeliveryPageSize
	}
	limit = min(limit, MaxDeliveryPageSize)
	q := `SELECT id, webhook_id, enterprise_id, seq, event_type, status, attempts, next_attempt_at, created_at, finished_at,
		last_status_code, last_error FROM webhook_deliveries WHERE webhook_id = $1 AND enterprise_id = $2`
	args := []any{f.WebhookID, f.EnterpriseID}
	if f.Status != "" {
		args = append(args, f.Status)
		q += ` AND status = $` + strconv.Itoa(len(args))
	}
	if f.Before > 0 {
		args = append(args, f.Before)
		q += ` AND id < $` + strconv.Itoa(len(args))
	}
	args = append(args, limit+1)
	q += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	var out []Delivery
	for rows.Next() {
		var (
			d    Delivery
			code sql.NullInt64
		)
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.EnterpriseID, &d.Seq, &d.EventType, &d.Status, &d.Attempts,
			dbTime{&d.NextAttemptAt}, dbTime{&d.CreatedAt}, dbTime{&d.FinishedAt}, &code, &d.LastError); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("list deliveries: %w", err)
		}
		d.LastStatusCode = int(code.Int64)
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	for i := range out {
		if out[i].AttemptLog, err = s.attempts(ctx, out[i].ID); err != nil {
			return nil, 0, err
		}
	}
	return out, next, nil
}

func (s *Store) attempts(ctx context.Context, deliveryID int64) ([]DeliveryAttempt, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT attempt, at, duration_ms, status_code, error FROM webhook_attempts
		WHERE delivery_id = $1 ORDER BY id DESC LIMIT $2`, deliveryID, maxAttemptsShown)
	if err != nil {
		return nil, fmt.Errorf("list delivery attempts: %w", err)
	}
	defer rows.Close()
	var out []DeliveryAttempt
	for rows.Next() {
		var (
			a    DeliveryAttempt
			ms   int64
			code sql.NullInt64
		)
		if err := rows.Scan(&a.Attempt, dbTime{&a.At}, &ms, &code, &a.Error); err != nil {
			return nil, fmt.Errorf("list delivery attempts: %w", err)
		}
		a.Duration, a.StatusCode = time.Duration(ms)*time.Millisecond, int(code.Int64)
		out = append(out, a)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// PruneDeliveries deletes finished deliveries (and their attempts)
// created before t. Pending ones stay until the worker finishes them.
func (s *Store) PruneDeliveries(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneChunks(ctx, "webhook deliveries", `DELETE FROM webhook_deliveries WHERE id IN
		(SELECT id FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending' LIMIT $2)`, t)
}
