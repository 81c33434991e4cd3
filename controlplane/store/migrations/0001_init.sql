-- Switchboard control plane: tenants, agents, API keys, audit.
-- Placeholders {{ID}}, {{TIME}}, {{BYTES}} are expanded per engine (dialect.go).

CREATE TABLE enterprises (
    id         {{ID}},
    number     TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    created_at {{TIME}} NOT NULL
);

CREATE TABLE agents (
    id             TEXT PRIMARY KEY,
    enterprise_id  BIGINT NOT NULL REFERENCES enterprises (id),
    name           TEXT NOT NULL,
    context        TEXT NOT NULL DEFAULT 'inoffice',
    token_hash     TEXT NOT NULL UNIQUE,
    token_prefix   TEXT NOT NULL,
    created_at     {{TIME}} NOT NULL,
    revoked_at     {{TIME}},
    last_seen_at   {{TIME}},
    last_acked_seq BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX agents_enterprise_idx ON agents (enterprise_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    name          TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    {{TIME}} NOT NULL,
    revoked_at    {{TIME}}
);
CREATE INDEX api_keys_enterprise_idx ON api_keys (enterprise_id);

-- Audit rows are facts about the past: agent_id is not a foreign key, so a
-- row may name a PBX that was never registered (a refused request).
CREATE TABLE audit_log (
    id            {{ID}},
    at            {{TIME}} NOT NULL,
    enterprise_id BIGINT REFERENCES enterprises (id),
    actor_type    TEXT NOT NULL CHECK (actor_type IN ('api_key', 'operator', 'system')),
    actor_id      TEXT NOT NULL DEFAULT '',
    action        TEXT NOT NULL,
    agent_id      TEXT,
    channel       TEXT,
    uniqueid      TEXT,
    from_ext      TEXT,
    to_number     TEXT,
    reason        TEXT,
    result        TEXT NOT NULL CHECK (result IN ('success', 'error')),
    error_code    TEXT,
    request_id    TEXT,
    client_addr   TEXT,
    details       TEXT
);
CREATE INDEX audit_log_enterprise_idx ON audit_log (enterprise_id, id);

CREATE TABLE hangup_attempts (
    id            {{ID}},
    at            {{TIME}} NOT NULL,
    enterprise_id BIGINT REFERENCES enterprises (id),
    actor_id      TEXT NOT NULL DEFAULT '',
    agent_id      TEXT,
    channel       TEXT,
    uniqueid      TEXT,
    reason        TEXT,
    error_code    TEXT NOT NULL,
    message       TEXT,
    request_id    TEXT
);
CREATE INDEX hangup_attempts_enterprise_idx ON hangup_attempts (enterprise_id, id);

CREATE TABLE idempotency_keys (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    response_body {{BYTES}} NOT NULL,
    created_at    {{TIME}} NOT NULL,
    PRIMARY KEY (enterprise_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
