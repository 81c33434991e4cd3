package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Notifications between replicas: PostgreSQL's LISTEN/NOTIFY. Payloads
// carry ids and sequence numbers only; whoever needs more reads it from
// the tables. PostgreSQL refuses payloads of 8000 bytes or more.

// MaxNotifyPayload is the largest payload Notify sends, well under
// PostgreSQL's 8000-byte limit.
const MaxNotifyPayload = 7000

// ErrNotifyUnsupported: LISTEN/NOTIFY needs PostgreSQL.
var ErrNotifyUnsupported = errors.New("notifications need PostgreSQL (SQLite is single-replica)")

// Notify sends each payload on channel, in one statement.
func (s *Store) Notify(ctx context.Context, channel string, payloads []string) error {
	if s.d.name != dialectPostgres {
		return ErrNotifyUnsupported
	}
	if len(payloads) == 0 {
		return nil
	}
	for _, p := range payloads {
		if len(p) > MaxNotifyPayload {
			return invalid("notification payload", "%d bytes is over %d", len(p), MaxNotifyPayload)
		}
	}
	if _, err := s.wdb.ExecContext(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, channel, payloads); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// Listener receives the notifications of one channel on a connection of
// its own (outside the pool). It is not safe for concurrent use: one
// goroutine calls Next; Close may be called from another.
type Listener struct {
	conn *pgx.Conn
}

// Listen opens a connection and LISTENs on channel. When Next fails for
// anything but its own ctx, the connection is gone: Close it and Listen
// again, and treat every notification since as missed.
func (s *Store) Listen(ctx context.Context, channel string) (*Listener, error) {
	if s.d.name != dialectPostgres {
		return nil, ErrNotifyUnsupported
	}
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		// pgx's connect errors can quote the DSN's host but not its
		// password; keep the wrapped error for the cause.
		return nil, fmt.Errorf("listen: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("listen on %s: %w", channel, err)
	}
	return &Listener{conn: conn}, nil
}

// Next waits for the next notification's payload until ctx ends. After a
// timeout of ctx the connection is still usable.
func (l *Listener) Next(ctx context.Context) (string, error) {
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		return "", err
	}
	return n.Payload, nil
}

// Ping checks the connection; a failure means it is gone.
func (l *Listener) Ping(ctx context.Context) error {
	return l.conn.Ping(ctx)
}

// Close closes the connection.
func (l *Listener) Close() error {
	return l.conn.Close(context.Background())
}
