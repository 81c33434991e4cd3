package store

import (
	"context"
	"fmt"
)

// CountAgents returns how many agents are registered and not revoked,
// across all enterprises (GET /api/status).
func (s *Store) CountAgents(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM agents WHERE revoked_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count agents: %w", err)
	}
	return n, nil
}
