-- The intent of a request that acts on a PBX (originate, hangup, monitor…),
-- written before the request goes down the tunnel. The audit row of its
-- outcome deletes it in the same transaction. One left behind by a crash
-- becomes an audit row with result 'error' and error code
-- 'outcome_unknown' (ResolveAuditIntents), so an action that may have
-- reached a PBX always has its row. entry is the audit row to write then,
-- as JSON.
CREATE TABLE audit_intents (
    id    {{ID}},
    at    {{TIME}} NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX audit_intents_at_idx ON audit_intents (at);
