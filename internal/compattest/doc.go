// Package compattest checks rolling upgrades with real binaries: the
// agent and control plane built from this tree against the ones built
// from the previous release (a baseline commit fetched from git), in both
// directions, each placing a call through the API to the AMI fake.
//
// It holds tests only. Whoever bumps protocol.MinVersion moves the
// baseline to the oldest release whose agents must still connect.
package compattest
