-- Webhook fairness. A claimed delivery is leased in leased_until (it
-- used to push next_attempt_at), so the deliveries in flight for a
-- webhook or an enterprise can be counted, cluster-wide, and capped.
-- A webhook whose receiver keeps failing is suspended: its deliveries
-- are not claimed before suspended_until, and while it has failures
-- (consecutive failed attempts) it gets one delivery in flight at a time.
ALTER TABLE webhook_deliveries ADD COLUMN leased_until {{TIME}};
-- A claim counts each webhook's deliveries in flight (leased_until in the
-- future): one index range per webhook.
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (webhook_id, leased_until);
-- A claim probes each webhook's oldest pending delivery and reads its due
-- ones in order: one index range per webhook, whatever its backlog.
CREATE INDEX webhook_deliveries_claim_idx ON webhook_deliveries (webhook_id, status, next_attempt_at, id);
ALTER TABLE webhooks ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN suspended_until {{TIME}};
