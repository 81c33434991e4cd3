// Package events owns how call events leave the control plane: the hub
// that fans stored events out to live subscribers, the GET /v1/events
// WebSocket (and its JSON polling form) with resume by sequence, signed
// webhooks with their delivery worker and retry policy, and the call
// history routes (GET /v1/calls, GET /v1/calls/{id}) with retention.
//
// It never stores an event itself: the gateway stores each agent batch
// with store.StoreAgentEvents, which writes the events, the call history
// rows and the webhook outbox rows in one transaction before the agent is
// acknowledged. This package is told about the batch afterwards (the
// server's OnEvents hook) only to wake live subscribers and the delivery
// worker; anything it misses it reads back from the store by sequence.
//
// Wiring: New builds a Service; its Routes method is a
// controlplane.Config.Routes hook (chain it with api.Routes), and Run,
// which the caller starts next to the server, owns the delivery worker
// and the retention pruner. Only the control plane imports it.
package events
