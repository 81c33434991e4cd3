-- Several control-plane replicas on one database (PostgreSQL).
--
-- Every `switchboard serve` heartbeats a row of replicas; one whose
-- heartbeat is older than three beats is dead. A second replica without
-- clustering refuses to start while another one is alive.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL DEFAULT '',
    hostname     TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    version      TEXT NOT NULL DEFAULT '',
    clustered    BOOLEAN NOT NULL DEFAULT FALSE,
    started_at   {{TIME}} NOT NULL,
    heartbeat_at {{TIME}} NOT NULL
);

-- Which replica holds each agent's tunnel. generation grows with every
-- claim, so the newest connection wins cluster-wide: a replica holding an
-- older generation drops its session. replica_id is NULL once the session
-- ended; the row stays so generations never go back. The status columns
-- are the owner's copy of the agent's last report, for the fleet view on
-- the other replicas.
CREATE TABLE agent_owners (
    agent_id         TEXT PRIMARY KEY,
    replica_id       TEXT,
    generation       BIGINT NOT NULL,
    session_id       TEXT NOT NULL DEFAULT '',
    since            {{TIME}},
    hostname         TEXT NOT NULL DEFAULT '',
    agent_version    TEXT NOT NULL DEFAULT '',
    protocol         INTEGER NOT NULL DEFAULT 0,
    asterisk_version TEXT NOT NULL DEFAULT '',
    ami              TEXT NOT NULL DEFAULT '',
    live_channels    INTEGER NOT NULL DEFAULT 0,
    live_calls       INTEGER NOT NULL DEFAULT 0,
    status_at        {{TIME}}
);
CREATE INDEX agent_owners_replica_idx ON agent_owners (replica_id);

-- Browser tickets (POST /v1/events/ticket) redeemable on any replica:
-- id is the SHA-256 of the ticket's random id; redeeming deletes the row,
-- so a ticket is used once cluster-wide.
CREATE TABLE event_tickets (
    id            TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL,
    credential_id TEXT NOT NULL,
    principal     TEXT NOT NULL,
    expires_at    {{TIME}} NOT NULL
);
CREATE INDEX event_tickets_enterprise_idx ON event_tickets (enterprise_id, expires_at);
CREATE INDEX event_tickets_credential_idx ON event_tickets (credential_id);
CREATE INDEX event_tickets_expires_idx ON event_tickets (expires_at);

-- An Idempotency-Key is claimed before the PBX is called: claim is the
-- claimer's token while its request runs ('' once the result is stored),
-- claimed_until when another request may take the claim over (the
-- claimer stopped).
ALTER TABLE idempotency_keys ADD COLUMN claim TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ADD COLUMN claimed_until {{TIME}};
