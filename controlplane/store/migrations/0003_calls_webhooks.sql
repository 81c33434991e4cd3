-- Call history and the webhook outbox. Both are written in the same
-- transaction as the events they come from (StoreAgentEvents), so an
-- event the agent saw acknowledged is also in history and queued for
-- every webhook that wants it.

-- One row per call, keyed by the PBX and the call id (the uniqueid of
-- its first leg): two PBXs of one enterprise may reuse a uniqueid.
CREATE TABLE calls (
    id               {{ID}},
    enterprise_id    BIGINT NOT NULL REFERENCES enterprises (id),
    agent_id         TEXT NOT NULL,
    call_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    direction        TEXT NOT NULL DEFAULT '',
    from_number      TEXT NOT NULL DEFAULT '',
    to_number        TEXT NOT NULL DEFAULT '',
    channel          TEXT NOT NULL DEFAULT '',
    started_at       {{TIME}} NOT NULL,
    answered_at      {{TIME}},
    answered_by      TEXT NOT NULL DEFAULT '',
    answered_channel TEXT NOT NULL DEFAULT '',
    ended_at         {{TIME}},
    cause            INTEGER,
    cause_text       TEXT NOT NULL DEFAULT '',
    hungup_by        TEXT NOT NULL DEFAULT '',
    duration_s       INTEGER,
    billsec_s        INTEGER,
    monitored        BOOLEAN NOT NULL DEFAULT FALSE,
    first_seq        BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    updated_at       {{TIME}} NOT NULL,
    UNIQUE (enterprise_id, agent_id, call_id)
);
CREATE INDEX calls_started_idx ON calls (enterprise_id, started_at, id);
CREATE INDEX calls_call_idx ON calls (enterprise_id, call_id);
CREATE INDEX calls_prune_idx ON calls (started_at);

CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    url           TEXT NOT NULL,
    -- The HMAC key: kept in clear because every delivery is signed with it.
    secret        TEXT NOT NULL,
    event_types   TEXT NOT NULL DEFAULT '', -- comma-separated; '' = every type
    agent_id      TEXT NOT NULL DEFAULT '', -- '' = every PBX
    description   TEXT NOT NULL DEFAULT '',
    created_at    {{TIME}} NOT NULL
);
CREATE INDEX webhooks_enterprise_idx ON webhooks (enterprise_id);

-- The outbox: one row per (webhook, event). next_attempt_at doubles as
-- the claim lease: a worker that claims a row pushes it past the attempt
-- timeout, so a crashed worker's rows become due again by themselves.
CREATE TABLE webhook_deliveries (
    id               {{ID}},
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    enterprise_id    BIGINT NOT NULL REFERENCES enterprises (id),
    seq              BIGINT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  {{TIME}} NOT NULL,
    created_at       {{TIME}} NOT NULL,
    finished_at      {{TIME}},
    last_status_code INTEGER,
    last_error       TEXT NOT NULL DEFAULT '',
    UNIQUE (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_prune_idx ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id           {{ID}},
    delivery_id  BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    at           {{TIME}} NOT NULL,
    duration_ms  BIGINT NOT NULL,
    status_code  INTEGER,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
