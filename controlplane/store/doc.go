// Package store owns the control plane's persistent state: enterprises
// (tenants), PBX agents and their tokens, API keys, the audit log, failed
// hangup attempts and idempotency records, and what several control-plane
// replicas on one PostgreSQL share: their heartbeat rows (replicas), which
// replica holds each agent's tunnel (agent_owners), browser tickets any
// replica can redeem once, idempotency keys claimed before a PBX is called,
// and LISTEN/NOTIFY between them (Notify, Listen).
//
// One implementation over database/sql serves two engines: PostgreSQL
// (through pgx) for production and replicas, and an embedded SQLite file
// (modernc.org/sqlite, pure Go) as the zero-setup default. Everything that
// differs between them lives in dialect.go; the schema is one set of
// embedded, numbered migrations applied at Open.
//
// This is the only package that imports pgx or SQLite. Secrets (agent
// tokens, API keys) are generated here, returned once, and stored only as
// SHA-256 hashes.
package store
