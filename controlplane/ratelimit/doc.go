// Package ratelimit owns the control plane's request limit: token buckets
// per credential and per enterprise (Limiter), the API layer's one limit.
// The calls being set up on one PBX are capped by that PBX's agent, which
// alone knows when Asterisk has answered them.
//
// Everything is in process memory and bounded: idle buckets are dropped,
// and the number of buckets has a hard cap with least-recently-used
// eviction. Several control-plane replicas keep a limit cluster-wide by
// sharing it (Config.Share): each of N live replicas admits 1/N of every
// rate and burst, which adds up to the limit when the load balancer
// spreads a credential's requests over them (round robin, least
// connections). A client pinned to one replica gets its 1/N.
//
// The package knows nothing of HTTP or auth: the API passes a credential
// id (auth.Principal.CredentialID) and an enterprise id, and turns a
// refusal into 429 with Retry-After.
package ratelimit
