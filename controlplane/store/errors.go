package store

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: no such record, or a token that does not match any
	// live secret (unknown id, wrong secret, malformed token).
	ErrNotFound = errors.New("not found")
	// ErrRevoked: the record exists and the secret matched, but it was revoked.
	ErrRevoked = errors.New("revoked")
	// ErrEnterpriseInactive: the secret matched, but its enterprise is disabled.
	ErrEnterpriseInactive = errors.New("enterprise inactive")
	// ErrConflict: a uniqueness rule was violated (duplicate enterprise
	// number, an idempotency key reused with a different request, …).
	ErrConflict = errors.New("conflict")
	// ErrInvalid matches every *ValidationError.
	ErrInvalid = errors.New("invalid input")
	// ErrSchemaTooNew: the database was migrated by a newer build; running
	// this build against it could corrupt data, so Open refuses.
	ErrSchemaTooNew = errors.New("database schema is newer than this build")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// ValidationError reports one rejected input field. Nothing was written.
type ValidationError struct {
	Field   string // the input's name, e.g. "enterprise number"
	Problem string // what is wrong with it, e.g. "must be 1-16 digits"
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrInvalid) true for every validation error.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}
