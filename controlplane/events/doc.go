// Package events owns how call events leave the control plane: the hub
// (Broker) that fans stored events out to live subscribers, the event
// stream with resume by sequence (Stream: the WebSocket; Page: the JSON
// polling form), signed webhooks with their delivery worker and retry
// policy and the SSRF rules of their URLs, the call history read model
// (Calls, Call: a call and its event timeline), and retention.
//
// It serves no HTTP route itself: the api package authenticates, limits,
// audits and routes every request and calls in here, and it maps this
// package's errors (*InputError, ErrTooManySubscribers, the store's) to
// statuses. Stream writes only to a WebSocket it has upgraded.
//
// It never stores an event itself: the gateway stores each agent batch
// with store.StoreAgentEvents, which writes the events, the call history
// rows and the webhook outbox rows in one transaction before the agent is
// acknowledged. This package is told about the batch afterwards
// (OnEvents, which controlplane.New hands to the gateway) only to wake
// live subscribers and the delivery worker; anything it misses it reads
// back from the store by sequence.
//
// Webhook deliveries are shared fairly: claims go round robin over
// webhooks, with caps on the deliveries in flight per webhook and per
// enterprise across replicas, and a receiver that keeps failing is
// suspended (holding no slot) and then probed one delivery at a time.
//
// controlplane.New builds the Service; Run (started by the control
// plane's Serve) owns the delivery worker and the retention pruner. Only
// the control plane imports it.
package events
