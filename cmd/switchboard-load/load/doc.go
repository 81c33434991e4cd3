// Package load measures a Switchboard control plane under a simulated
// fleet: N agents, each a real agent.Agent logged in to its own fake
// Asterisk (amitest), dialling one control plane over loopback.
//
// It owns the load run's parts: provisioning the store (enterprises,
// agents, API keys), the control plane as a child process (so its RSS and
// CPU are its own), the simulated PBXs in worker processes (each process
// has its own file-descriptor limit), the API traffic (POST /v1/calls at
// a fixed rate, GET /v1/fleet) and the report (a Markdown table).
//
// Only cmd/switchboard-load imports it.
package load
