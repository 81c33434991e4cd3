// Package systemtest starts the whole system in a test: the control plane
// exactly as `switchboard serve` assembles it (controlplane.New: store,
// gateway, events, HTTP API) on a loopback port, and PBXs made of a fake
// Asterisk (amitest) with a real agent connected through the real tunnel.
//
// It lives outside the control plane's tree because it imports the agent:
// the control plane itself drives agents only through the wire, and
// agent_deps/import tests keep it so. Only tests import this package.
package systemtest
