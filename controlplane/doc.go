// Package controlplane assembles the central server (`switchboard serve`):
// it opens the store, and serves the agent gateway, the HTTP API and the
// health endpoints on one listener, with or without TLS. Each part lives in
// its own sub-package; this one only wires them together and owns the
// process-level lifecycle (listen, graceful shutdown).
package controlplane
