// Package auth owns who a request is and what it may do: it turns the
// credentials on an HTTP request (an enterprise API key or an operator JWT)
// into a Principal, decides whether that Principal may perform an Action,
// and issues the short-lived single-use tickets browsers use to open the
// events WebSocket.
//
// It does not store anything. API keys live in the store; auth reaches them
// through the small KeyLookup and EnterpriseLookup interfaces, which the
// control plane satisfies with an adapter over the store so that this
// package never imports it.
//
// Errors are for branching, not for clients: Authenticate returns errors
// matching ErrMissingCredentials or ErrInvalidCredentials (401) and
// Principal.Allows returns a *ForbiddenError matching ErrForbidden (403).
// Any other error from Authenticate is an infrastructure failure (500/503).
// The API must answer 401 with one fixed message whatever the reason, so a
// caller never learns whether a key exists, was revoked or a JWT's
// signature or claims were wrong.
//
// Secrets never leave this package in logs or errors: an API key is only
// ever named by its public id (the <id> in sbk_<id>_<secret>), and a JWT is
// never logged at all.
package auth
