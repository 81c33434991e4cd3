// Package ratelimit owns the control plane's request limit: token buckets
// per credential and per enterprise (Limiter), the API layer's one limit.
// The calls being set up on one PBX are capped by that PBX's agent, which
// alone knows when Asterisk has answered them.
//
// Everything is in process memory and bounded: idle buckets are dropped,
// and the number of buckets has a hard cap with least-recently-used
// eviction. Several control-plane replicas each enforce their own limits;
// a shared limit would need the store and is not done here.
//
// The package knows nothing of HTTP or auth: the API passes a credential
// id (auth.Principal.CredentialID) and an enterprise id, and turns a
// refusal into 429 with Retry-After.
package ratelimit
