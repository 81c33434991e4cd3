// Package metrics owns the control plane's Prometheus metrics: their names,
// labels and buckets, the /metrics handler, the observers the API, the
// gateway and the events service report to, and the decorator that
// instruments requests to agents, so the packages doing the work need not
// know about Prometheus.
//
// Label values are bounded: HTTP routes are the route table's patterns (not raw
// paths), agent operations are the protocol's op names, results are the
// protocol's error codes.
package metrics
