package store

import "context"

// CountRows counts a table's rows, for tests that check what was pruned.
func (s *Store) CountRows(ctx context.Context, table string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	return n, err
}

// ClaimAgent is ClaimAgents of one owner, for tests; payload is told
// the claim's generation.
func (s *Store) ClaimAgent(ctx context.Context, o Owner, notify string, payload func(generation int64) string) (int64, error) {
	var each func(string, int64) string
	if payload != nil {
		each = func(_ string, gen int64) string { return payload(gen) }
	}
	gens, err := s.ClaimAgents(ctx, []Owner{o}, notify, each)
	if err != nil {
		return 0, err
	}
	return gens[0], nil
}

// ReleaseAgent is ReleaseAgents of one claim, for tests: whether it was
// still current.
func (s *Store) ReleaseAgent(ctx context.Context, agentID string, generation int64, notify, payload string) (bool, error) {
	done, err := s.ReleaseAgents(ctx, []Release{{AgentID: agentID, Generation: generation}}, notify,
		func(string, int64) string { return payload })
	if err != nil {
		return false, err
	}
	return done[0], nil
}
