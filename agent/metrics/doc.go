// Package metrics exposes a running agent's state as Prometheus metrics,
// for an operator who wants to scrape the PBX side too (switchboard-agent
// --metrics-listen, off by default). Everything is read from the agent at
// scrape time, so the agent's hot paths carry no instrumentation.
package metrics
