// Package api owns the control plane's public HTTP API: the v1 JSON routes
// (calls, hangup, monitor, channels, PBXs, fleet, audit, the OpenAPI
// document) and the legacy routes that are byte-compatible drop-ins for
// the two services Switchboard replaces (the SSH originate service and the
// Laravel hangup endpoint).
//
// It owns what happens between the socket and the fleet: request ids,
// access logging, panic recovery, body limits, strict JSON decoding,
// authentication (through package auth), rate limits (package ratelimit),
// idempotency, audit rows, tenant confinement (anything of another
// enterprise is a 404, exactly as if it did not exist) and the mapping of
// every failure to a stable error code. It reaches PBXs only through
// fleet.Caller and fleet.Directory, so a multi-replica router can replace
// the in-process registry later.
//
// Register it on the control plane with Routes:
//
//	controlplane.New(ctx, controlplane.Config{…, Routes: api.Routes(api.Config{…})})
//
// openapi.json, embedded and served at /v1/openapi.json, documents every
// route; a test fails when a registered route is missing from it.
package api
