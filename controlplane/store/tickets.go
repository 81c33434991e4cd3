package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Ticket is a browser ticket (POST /v1/events/ticket) kept in the store,
// so any replica can redeem it, once.
type Ticket struct {
	// ID is a digest of the ticket's random id (never the ticket itself).
	ID           string
	EnterpriseID int64
	// CredentialID names the credential it was issued to (revocation
	// drops its tickets).
	CredentialID string
	// Principal is the caller's encoded principal, opaque to the store.
	Principal string
	ExpiresAt time.Time
}

// ErrTooManyTickets: the enterprise holds as many unexpired tickets as
// PutTicket allows.
var ErrTooManyTickets = errors.New("too many outstanding tickets")

// PutTicket stores t unless its enterprise already holds maxPerEnterprise
// unexpired tickets (ErrTooManyTickets; 0: no bound). Expired tickets are
// deleted on the way.
func (s *Store) PutTicket(ctx context.Context, t Ticket, maxPerEnterprise int) error {
	if t.ID == "" || t.Principal == "" || t.ExpiresAt.IsZero() {
		return invalid("ticket", "id, principal and expiry must be set")
	}
	now := s.d.timeArg(s.now())
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put ticket: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM event_tickets WHERE expires_at <= $1`, now); err != nil {
		return fmt.Errorf("put ticket: expire: %w", err)
	}
	if maxPerEnterprise > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM event_tickets WHERE enterprise_id = $1`, t.EnterpriseID).Scan(&n); err != nil {
			return fmt.Errorf("put ticket: count: %w", err)
		}
		if n >= maxPerEnterprise {
			return fmt.Errorf("%w for the enterprise (%d)", ErrTooManyTickets, maxPerEnterprise)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO event_tickets (id, enterprise_id, credential_id, principal, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.EnterpriseID, t.CredentialID, t.Principal, s.d.timeArg(t.ExpiresAt)); err != nil {
		return fmt.Errorf("put ticket: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put ticket: commit: %w", err)
	}
	return nil
}

// TakeTicket deletes ticket id and returns it: whoever takes it first
// redeems it, on any replica. ErrNotFound: unknown, already taken, or
// revoked. An expired ticket is returned as it is (the caller refuses it).
func (s *Store) TakeTicket(ctx context.Context, id string) (Ticket, error) {
	t := Ticket{ID: id}
	err := s.wdb.QueryRowContext(ctx, `DELETE FROM event_tickets WHERE id = $1 RETURNING enterprise_id, credential_id, principal, expires_at`, id).
		Scan(&t.EnterpriseID, &t.CredentialID, &t.Principal, dbTime{&t.ExpiresAt})
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, fmt.Errorf("ticket: %w", ErrNotFound)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("take ticket: %w", err)
	}
	return t, nil
}

// RevokeTickets deletes the unredeemed tickets of a credential and says
// how many.
func (s *Store) RevokeTickets(ctx context.Context, credentialID string) (int, error) {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM event_tickets WHERE credential_id = $1`, credentialID)
	if err != nil {
		return 0, fmt.Errorf("revoke tickets: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoke tickets: %w", err)
	}
	return int(n), nil
}
