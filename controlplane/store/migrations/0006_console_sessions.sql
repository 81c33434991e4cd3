-- The web console's sign-ins. A session is what a browser's HttpOnly cookie
-- names: the credential it was exchanged for (an API key, by id, so that
-- revoking the key ends its sessions; or an operator's subject and roles
-- from a verified JWT or a sign-in link) and when it ends, never after
-- that credential's exp. Only the SHA-256 of the cookie's secret is kept.
-- A link is a single-use sign-in URL (`switchboard console-link`): used_at
-- is set by the one request that redeems it.
CREATE TABLE console_sessions (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL UNIQUE,
    actor_type    TEXT NOT NULL CHECK (actor_type IN ('api_key', 'operator')),
    actor_id      TEXT NOT NULL,
    enterprise_id BIGINT REFERENCES enterprises (id),
    roles         TEXT NOT NULL DEFAULT '',
    created_at    {{TIME}} NOT NULL,
    expires_at    {{TIME}} NOT NULL
);
CREATE INDEX console_sessions_actor_idx ON console_sessions (actor_type, actor_id, enterprise_id, created_at);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

CREATE TABLE console_links (
    id            TEXT PRIMARY KEY,
    secret_hash   TEXT NOT NULL UNIQUE,
    subject       TEXT NOT NULL,
    enterprise_id BIGINT REFERENCES enterprises (id),
    roles         TEXT NOT NULL,
    created_at    {{TIME}} NOT NULL,
    expires_at    {{TIME}} NOT NULL,
    used_at       {{TIME}}
);
CREATE INDEX console_links_expires_idx ON console_links (expires_at);
