// Package api is the control plane's one HTTP surface. Its route table
// (routes.go) lists every route the server answers: the v1 JSON routes
// (calls and their history, hangup, monitor, channels, PBXs, fleet, audit,
// events and their browser tickets, webhooks, the OpenAPI document), the
// legacy routes that are byte-compatible drop-ins for the two services
// Switchboard replaces (the SSH originate service and the Laravel hangup
// endpoint), the health and metrics endpoints, the agents' tunnel
// endpoint, and the internal route other replicas forward requests to
// (POST /cluster/v1/call, authenticated by the cluster's signature through
// ClusterPeer, not by a client credential).
//
// Every route goes through one chain (middleware.go, api.go): request id,
// panic recovery, body limit, authentication (through package auth: an
// Authorization header, the legacy ?clientId=, or a single-use ticket on
// GET /v1/events), rate limits per credential and per enterprise (package
// ratelimit), the handler, one error envelope per route style (errors.go is
// the one place any part's error becomes a status and a stable code), the
// audit row of every mutating request, the access log and the metrics. It
// is the only package that writes HTTP error bodies.
//
// Handlers reach PBXs only through fleet.Caller and fleet.Directory (the
// cluster's when several replicas run: a PBX held by another replica is
// forwarded to it), the
// event stream, webhooks' URL rules and the call history through
// *events.Service, and agents' tunnels through AgentEndpoint (the
// gateway). Anything of another enterprise is a 404, exactly as if it did
// not exist. controlplane.New builds it; tests start it through
// internal/systemtest.
//
// openapi.json, embedded and served at /v1/openapi.json, documents every
// route; a test fails when a route of the table is missing from it.
package api
