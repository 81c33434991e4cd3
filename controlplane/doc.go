// Package controlplane assembles the central server (`switchboard serve`)
// in one place: New builds every part from one Config with a nested config
// per part (gateway, api, events), opening the store and wiring the parts
// to each other once, with no hooks that change the server afterwards;
// Serve registers the replica (its heartbeat row; it refuses to start
// beside a replica it may not run with), runs the HTTP listener (the API
// and the agent tunnels, with or without TLS), the events workers and the
// cluster's, and shuts them down gracefully, deregistering last. With
// Config.Cluster's secret, several replicas share one PostgreSQL (the
// cluster package): New wires the cluster in as the API's Caller and
// Directory, the gateway's Ownership and the events Broker.
//
// `switchboard serve`, `switchboard demo`, the load tool and the tests'
// internal/systemtest all build the control plane with New. Each part lives
// in its own sub-package; this one only wires them and owns the process
// lifecycle.
package controlplane
