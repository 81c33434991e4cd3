package store

import "context"

// CountRows counts a table's rows, for tests that check what was pruned.
func (s *Store) CountRows(ctx context.Context, table string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	return n, err
}
