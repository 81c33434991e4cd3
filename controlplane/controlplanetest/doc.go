// Package controlplanetest runs a whole control plane in process for
// tests, in the spirit of coder's coderdtest: the real controlplane.Server
// with the real HTTP API on 127.0.0.1:0, an SQLite or PostgreSQL store
// (controlplane/store/storetest), enterprises, API keys and operator JWTs,
// and PBXs made of a fake Asterisk (amitest) and a REAL agent connected
// through the REAL tunnel. Everything it starts is stopped and waited for
// when the test ends.
//
// It imports package testing and is for tests and benchmarks only.
package controlplanetest
