// Package depcheck has no code: its test keeps the module's heavy or
// protocol-level dependencies inside the packages that own them. The rule,
// checked on every package's imports (its _test files included):
//
//   - github.com/hashicorp/yamux: only protocol/tunnel, which carries the
//     agent tunnel (one WebSocket with a yamux session inside).
//   - github.com/coder/websocket: protocol/tunnel (the agent tunnel),
//     controlplane/events (the /v1/events stream it serves) and
//     cmd/switchboard (`switchboard events tail`, a client of that stream);
//     the tests of controlplane/api, controlplane/cluster and
//     internal/realpbx too (clients of the stream), never their code.
//   - github.com/jackc/pgx and modernc.org/sqlite: only controlplane/store.
//     Test helpers reach PostgreSQL through the "pgx" database/sql driver the
//     store registers (store/storetest), not by importing pgx.
//   - github.com/chromedp (chromedp and cdproto, a headless browser driver):
//     the test files of controlplane/console only (its browser tests),
//     never code that ships.
//
// Moving code that uses one of these into another package means changing
// the allow-list in depcheck_test.go and this comment, on purpose.
// agent/deps_test.go separately keeps the agent binary free of the store,
// the control plane and package testing.
package depcheck
