// Package metrics owns the control plane's Prometheus metrics: their names,
// labels and buckets, the /metrics handler, and the small decorators that
// instrument the HTTP server and requests to agents from the outside, so
// the packages doing the work need not know about Prometheus.
//
// Label values are bounded: HTTP routes are the mux's patterns (not raw
// paths), agent operations are the protocol's op names, results are the
// protocol's error codes.
package metrics
