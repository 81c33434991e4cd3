package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Enterprise is a tenant: it owns PBX agents and API keys.
type Enterprise struct {
	ID        int64
	Number    string // e.g. "0367": digits, leading zeros significant
	Name      string
	Active    bool
	CreatedAt time.Time
}

const enterpriseColumns = `id, number, name, active, created_at`

func scanEnterprise(row interface{ Scan(...any) error }) (Enterprise, error) {
	var e Enterprise
	err := row.Scan(&e.ID, &e.Number, &e.Name, &e.Active, dbTime{&e.CreatedAt})
	return e, err
}

// CreateEnterprise adds an active enterprise. A number already in use is
// ErrConflict.
func (s *Store) CreateEnterprise(ctx context.Context, number, name string) (Enterprise, error) {
	if err := validateEnterpriseNumber(number); err != nil {
		return Enterprise{}, err
	}
	name, err := cleanName("enterprise name", name)
	if err != nil {
		return Enterprise{}, err
	}
	e := Enterprise{Number: number, Name: name, Active: true, CreatedAt: s.now()}
	err = s.wdb.QueryRowContext(ctx,
		`INSERT INTO enterprises (number, name, active, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		e.Number, e.Name, e.Active, s.d.timeArg(e.CreatedAt)).Scan(&e.ID)
	if isUniqueViolation(err) {
		return Enterprise{}, fmt.Errorf("create enterprise: %w: number %s already exists", ErrConflict, number)
	}
	if err != nil {
		return Enterprise{}, fmt.Errorf("create enterprise: %w", err)
	}
	return e, nil
}

// EnterpriseByNumber finds an enterprise by its number, or ErrNotFound.
func (s *Store) EnterpriseByNumber(ctx context.Context, number string) (Enterprise, error) {
	if err := validateEnterpriseNumber(number); err != nil {
		return Enterprise{}, err
	}
	e, err := scanEnterprise(s.db.QueryRowContext(ctx,
		`SELECT `+enterpriseColumns+` FROM enterprises WHERE number = $1`, number))
	if errors.Is(err, sql.ErrNoRows) {
		return Enterprise{}, fmt.Errorf("enterprise %s: %w", number, ErrNotFound)
	}
	if err != nil {
		return Enterprise{}, fmt.Errorf("enterprise %s: %w", number, err)
	}
	return e, nil
}

// EnterpriseByID finds an enterprise by id, or ErrNotFound.
func (s *Store) EnterpriseByID(ctx context.Context, id int64) (Enterprise, error) {
	e, err := scanEnterprise(s.db.QueryRowContext(ctx,
		`SELECT `+enterpriseColumns+` FROM enterprises WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Enterprise{}, fmt.Errorf("enterprise id %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Enterprise{}, fmt.Errorf("enterprise id %d: %w", id, err)
	}
	return e, nil
}

// ListEnterprises returns every enterprise, ordered by number.
func (s *Store) ListEnterprises(ctx context.Context) ([]Enterprise, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+enterpriseColumns+` FROM enterprises ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("list enterprises: %w", err)
	}
	defer rows.Close()
	var out []Enterprise
	for rows.Next() {
		e, err := scanEnterprise(rows)
		if err != nil {
			return nil, fmt.Errorf("list enterprises: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enterprises: %w", err)
	}
	return out, nil
}

// SetEnterpriseActive enables or disables an enterprise. The tokens and
// keys of a disabled enterprise stop authenticating (ErrEnterpriseInactive)
// until it is enabled again.
func (s *Store) SetEnterpriseActive(ctx context.Context, id int64, active bool) error {
	res, err := s.wdb.ExecContext(ctx, `UPDATE enterprises SET active = $2 WHERE id = $1`, id, active)
	if err != nil {
		return fmt.Errorf("set enterprise %d active: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set enterprise %d active: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("enterprise id %d: %w", id, ErrNotFound)
	}
	return nil
}
