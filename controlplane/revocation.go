package controlplane

import (
	"context"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
)

// Revocations are written to the store by another process (`switchboard
// agent revoke`, `apikey revoke`, another replica), so each server checks
// the store for them and ends what it holds for a revoked credential: an
// agent's tunnel, an API key's event streams, tickets and cached
// verifications.
const (
	// revocationLookback: each check lists the revocations of this long
	// before the previous one, not only those since. revoked_at comes from
	// the clock of the process that revoked, which may lag ours, and a
	// stream or tunnel that was being opened while a check ran (its
	// credential verified just before) is caught by the next.
	revocationLookback = 5 * time.Minute
	// minRevocationInterval bounds how often the store is asked.
	minRevocationInterval = 100 * time.Millisecond
	revocationTimeout     = 5 * time.Second
)

// revocationInterval is half the API key cache's TTL (--key-cache-ttl), so
// a revocation bites within it: a revoked key stops working on this server
// when its cached verification is forgotten, and everything else it holds
// ends at the same time.
func (s *Server) revocationInterval() time.Duration {
	ttl := s.cfg.API.KeyCacheTTL
	if ttl <= 0 {
		ttl = api.DefaultKeyCacheTTL
	}
	return max(ttl/2, minRevocationInterval)
}

// watchRevocations checks the store every revocationInterval until ctx
// ends. A failed check is logged once per outage and retried.
func (s *Server) watchRevocations(ctx context.Context) error {
	every := s.revocationInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	since := time.Now().Add(-revocationLookback)
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, revocationTimeout)
		rev, err := s.store.RevokedSince(rctx, since)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				s.log.Warn("revocation check failed; retrying", "every", every, "err", err)
			}
			failing = true
			continue
		case failing:
			s.log.Info("revocation check works again")
			failing = false
		}
		since = start.Add(-revocationLookback)
		s.enforceRevocations(rev.Agents, rev.APIKeys)
	}
}

// enforceRevocations ends what this server holds for revoked agents and
// API keys; for ones already handled it does nothing.
func (s *Server) enforceRevocations(agents, keys []string) {
	tunnels := 0
	for _, id := range agents {
		if s.registry.Revoke(id) {
			tunnels++
		}
	}
	streams, tickets := s.api.RevokeAPIKeys(keys)
	s.metrics.RevocationsEnforced("agent_tunnel", tunnels)
	s.metrics.RevocationsEnforced("event_stream", streams)
	s.metrics.RevocationsEnforced("ticket", tickets)
	if tunnels+streams+tickets > 0 {
		s.log.Info("revocations enforced", "agent_tunnels_closed", tunnels, "event_streams_closed", streams, "tickets_dropped", tickets)
	}
}
