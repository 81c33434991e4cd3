package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// MaxIdempotencyKeyLen bounds a client's Idempotency-Key.
const MaxIdempotencyKeyLen = 255

// ErrIdempotencyMismatch: the key was already used for a different request.
// It matches ErrConflict too.
var ErrIdempotencyMismatch = fmt.Errorf("idempotency key reused with a different request: %w", ErrConflict)

// Idempotent is the stored outcome of a request sent with an idempotency
// key, replayed when the same request comes again with the same key.
type Idempotent struct {
	EnterpriseID int64
	Key          string
	RequestHash  string // the caller's digest of what makes two requests "the same"
	StatusCode   int
	Body         []byte
	CreatedAt    time.Time // set by PutIdempotent
}

// Matches reports whether requestHash is the request this record answers.
func (r Idempotent) Matches(requestHash string) bool { return r.RequestHash == requestHash }

func validateIdempotencyKey(enterpriseID int64, key string) error {
	if enterpriseID == 0 {
		return invalid("idempotency enterprise", "must be set")
	}
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return invalid("idempotency key", "must be 1-%d bytes, got %d", MaxIdempotencyKeyLen, len(key))
	}
	if cleanText(key) != key {
		return invalid("idempotency key", "must be valid UTF-8 without NUL bytes")
	}
	return nil
}

// GetIdempotent returns the stored outcome for (enterpriseID, key), or
// ErrNotFound. Compare its RequestHash (Matches) before replaying it.
func (s *Store) GetIdempotent(ctx context.Context, enterpriseID int64, key string) (Idempotent, error) {
	if err := validateIdempotencyKey(enterpriseID, key); err != nil {
		return Idempotent{}, err
	}
	return s.getIdempotent(ctx, s.db, enterpriseID, key)
}

func (s *Store) getIdempotent(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, enterpriseID int64, key string) (Idempotent, error) {
	r := Idempotent{EnterpriseID: enterpriseID, Key: key}
	err := q.QueryRowContext(ctx, `SELECT request_hash, status_code, response_body, created_at
		FROM idempotency_keys WHERE enterprise_id = $1 AND key = $2 AND claim = ''`, enterpriseID, key).
		Scan(&r.RequestHash, &r.StatusCode, &r.Body, dbTime{&r.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return Idempotent{}, fmt.Errorf("idempotency key: %w", ErrNotFound)
	}
	if err != nil {
		return Idempotent{}, fmt.Errorf("get idempotency key: %w", err)
	}
	return r, nil
}

// PutIdempotent stores an outcome unless one is already stored for the
// same key: the first writer wins. It completes a pending claim of the key
// (ClaimIdempotent), whoever holds it. It returns the record that is stored:
// the caller's own, the earlier one for the same request (replay it), or
// the earlier one with ErrIdempotencyMismatch when the request differs.
func (s *Store) PutIdempotent(ctx context.Context, rec Idempotent) (Idempotent, error) {
	if err := validateIdempotencyKey(rec.EnterpriseID, rec.Key); err != nil {
		return Idempotent{}, err
	}
	if rec.RequestHash == "" {
		return Idempotent{}, invalid("idempotency request hash", "must not be empty")
	}
	if rec.StatusCode < 100 || rec.StatusCode > 599 {
		return Idempotent{}, invalid("idempotency status code", "must be an HTTP status 100-599, got %d", rec.StatusCode)
	}
	if rec.Body == nil {
		rec.Body = []byte{} // NOT NULL; nil binds as NULL
	}
	rec.CreatedAt = s.now()
	// A pending claim (ClaimIdempotent) is completed; a stored result is
	// kept.
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO idempotency_keys
		(enterprise_id, key, request_hash, status_code, response_body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (enterprise_id, key) DO UPDATE SET
			request_hash = excluded.request_hash, status_code = excluded.status_code, response_body = excluded.response_body,
			created_at = excluded.created_at, claim = '', claimed_until = NULL
		WHERE idempotency_keys.claim <> ''`,
		rec.EnterpriseID, rec.Key, rec.RequestHash, rec.StatusCode, rec.Body, s.d.timeArg(rec.CreatedAt))
	if err != nil {
		return Idempotent{}, fmt.Errorf("put idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Idempotent{}, fmt.Errorf("put idempotency key: %w", err)
	} else if n == 1 {
		return rec, nil
	}
	first, err := s.getIdempotent(ctx, s.wdb, rec.EnterpriseID, rec.Key)
	if err != nil {
		return Idempotent{}, err
	}
	if !first.Matches(rec.RequestHash) {
		return first, fmt.Errorf("idempotency key %q: %w", rec.Key, ErrIdempotencyMismatch)
	}
	return first, nil
}

// DeleteIdempotentBefore forgets outcomes stored before t and says how many.
func (s *Store) DeleteIdempotentBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, s.d.timeArg(t))
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return n, nil
}

// ErrIdempotencyInFlight: another request holds the key's claim and is
// running (on this replica or another). It matches ErrConflict too.
var ErrIdempotencyInFlight = fmt.Errorf("a request with this idempotency key is in progress: %w", ErrConflict)

// ClaimIdempotent claims rec's key (EnterpriseID, Key, RequestHash) for a
// request about to act, before it acts, so the same key sent to two
// replicas at once acts once. It returns one of:
//   - a claim token: the key was free (or its claimer's lease ran out),
//     and the caller acts, then stores its result with PutIdempotent or
//     gives the claim back with ReleaseIdempotent;
//   - the stored result (no token): compare it with Matches and replay it;
//   - ErrIdempotencyInFlight, with the running request's record (compare
//     its RequestHash): wait and ask again.
//
// lease bounds how long the claim holds if its claimer stops without
// storing or releasing it.
func (s *Store) ClaimIdempotent(ctx context.Context, rec Idempotent, lease time.Duration) (string, Idempotent, error) {
	if err := validateIdempotencyKey(rec.EnterpriseID, rec.Key); err != nil {
		return "", Idempotent{}, err
	}
	if rec.RequestHash == "" {
		return "", Idempotent{}, invalid("idempotency request hash", "must not be empty")
	}
	if lease <= 0 {
		return "", Idempotent{}, invalid("idempotency lease", "must be positive, got %v", lease)
	}
	for range 3 {
		token, cur, err := s.claimIdempotent(ctx, rec, lease)
		if !errors.Is(err, errClaimRace) {
			return token, cur, err
		}
	}
	return "", Idempotent{}, fmt.Errorf("idempotency key %q: %w", rec.Key, ErrIdempotencyInFlight)
}

// errClaimRace: the key's row went away between claimIdempotent's two
// statements (released, pruned): ask again.
var errClaimRace = errors.New("idempotency claim raced")

func (s *Store) claimIdempotent(ctx context.Context, rec Idempotent, lease time.Duration) (string, Idempotent, error) {
	token := rand.Text()
	now := s.now()
	until := s.d.timeArg(now.Add(lease))
	// Insert a pending row, or take over one whose claimer's lease ran
	// out; a stored result or a live claim is left alone.
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO idempotency_keys
		(enterprise_id, key, request_hash, status_code, response_body, created_at, claim, claimed_until)
		VALUES ($1, $2, $3, 0, $4, $5, $6, $7) ON CONFLICT (enterprise_id, key) DO UPDATE SET
			request_hash = excluded.request_hash, created_at = excluded.created_at, claim = excluded.claim, claimed_until = excluded.claimed_until
		WHERE idempotency_keys.claim <> '' AND idempotency_keys.claimed_until < $5`,
		rec.EnterpriseID, rec.Key, rec.RequestHash, []byte{}, s.d.timeArg(now), token, until)
	if err != nil {
		return "", Idempotent{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", Idempotent{}, fmt.Errorf("claim idempotency key: %w", err)
	} else if n == 1 {
		return token, Idempotent{}, nil
	}
	cur := Idempotent{EnterpriseID: rec.EnterpriseID, Key: rec.Key}
	var claim string
	err = s.wdb.QueryRowContext(ctx, `SELECT request_hash, status_code, response_body, created_at, claim
		FROM idempotency_keys WHERE enterprise_id = $1 AND key = $2`, rec.EnterpriseID, rec.Key).
		Scan(&cur.RequestHash, &cur.StatusCode, &cur.Body, dbTime{&cur.CreatedAt}, &claim)
	if errors.Is(err, sql.ErrNoRows) {
		return "", Idempotent{}, errClaimRace
	}
	if err != nil {
		return "", Idempotent{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	if claim != "" {
		return "", cur, fmt.Errorf("idempotency key %q: %w", rec.Key, ErrIdempotencyInFlight)
	}
	return "", cur, nil
}

// ReleaseIdempotent gives back a claim whose request failed, so a retry
// with the same key acts again. A claim already completed or taken over is
// left alone.
func (s *Store) ReleaseIdempotent(ctx context.Context, enterpriseID int64, key, token string) error {
	if token == "" {
		return nil
	}
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE enterprise_id = $1 AND key = $2 AND claim = $3`,
		enterpriseID, key, token); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
