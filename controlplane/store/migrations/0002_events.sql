-- Call events from agents. Each agent numbers its events (agent_seq); the
-- store gives each stored event a second number, seq, that is per
-- enterprise and gap-free, so an API client can resume with ?after=seq.

CREATE TABLE enterprise_event_seqs (
    enterprise_id BIGINT PRIMARY KEY REFERENCES enterprises (id),
    last_seq      BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE events (
    enterprise_id BIGINT NOT NULL REFERENCES enterprises (id),
    seq           BIGINT NOT NULL,
    agent_id      TEXT NOT NULL,
    agent_seq     BIGINT NOT NULL,
    type          TEXT NOT NULL,
    call_id       TEXT NOT NULL DEFAULT '',
    at            {{TIME}} NOT NULL,
    received_at   {{TIME}} NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (enterprise_id, seq),
    UNIQUE (agent_id, agent_seq)
);
CREATE INDEX events_call_idx ON events (enterprise_id, call_id);
CREATE INDEX events_received_idx ON events (received_at);
