package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Authentication outcomes the API maps to status codes.
var (
	// ErrMissingCredentials: the request carried no credentials (401).
	ErrMissingCredentials = errors.New("missing credentials")
	// ErrInvalidCredentials: credentials were present but not accepted (401).
	// Every rejection wraps it, together with a more specific reason below
	// for logs and metrics.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrForbidden: authenticated, but the role or scope is missing (403).
	// Returned as a *ForbiddenError.
	ErrForbidden = errors.New("forbidden")
)

// Errors the KeyLookup / EnterpriseLookup adapters map the store's errors to.
var (
	// ErrUnknownKey: no API key with this token (store.ErrNotFound).
	ErrUnknownKey = errors.New("unknown api key")
	// ErrRevokedKey: the key exists but was revoked (store.ErrRevoked).
	ErrRevokedKey = errors.New("api key revoked")
	// ErrUnknownEnterprise: no active enterprise with this number.
	ErrUnknownEnterprise = errors.New("unknown enterprise")
)

// Specific rejection reasons, always wrapped together with
// ErrInvalidCredentials.
var (
	ErrMalformedCredentials = errors.New("malformed credentials")
	ErrUnsupportedScheme    = errors.New("unsupported authorization scheme")
	ErrAmbiguousCredentials = errors.New("more than one credential on the request")
	ErrTokenExpired         = errors.New("token expired")
	ErrTokenNotYetValid     = errors.New("token not yet valid")
	ErrTokenSignature       = errors.New("token signature invalid")
	ErrTokenAlgorithm       = errors.New("token algorithm not accepted")
	ErrTokenClaims          = errors.New("token claims not accepted")
	ErrKeysNotConfigured    = errors.New("credential type not configured")
	ErrJWTNotEnabled        = errors.New("JWT not enabled on this server")
	// ErrSessionEnded: a web console session cookie that names no live
	// session (signed out, expired, or its API key revoked).
	ErrSessionEnded = errors.New("console session ended")
	// ErrLinkUsed: a console sign-in link that is unknown, expired or
	// already used.
	ErrLinkUsed = errors.New("sign-in link unknown, expired or already used")
)

// Reason is what a refused caller is told: enough to fix their own
// mistake, nothing that helps guess a credential. An unknown, a revoked
// and a disabled enterprise's API key get the same words; the JWT cases
// are told apart, since only the token's holder can act on them.
func Reason(err error) string {
	var ce *claimsError
	switch {
	case errors.Is(err, ErrMissingCredentials):
		return "missing credentials: send Authorization: Bearer <API key or operator JWT>"
	case errors.Is(err, ErrTokenExpired):
		return "token expired"
	case errors.Is(err, ErrTokenNotYetValid):
		return "token not yet valid (is the issuer's clock ahead?)"
	case errors.Is(err, ErrTokenAlgorithm):
		return "unsupported algorithm"
	case errors.Is(err, ErrTokenSignature):
		return "signature invalid"
	case errors.As(err, &ce):
		return "token claims not accepted: " + ce.problem
	case errors.Is(err, ErrTokenClaims):
		return "token claims not accepted"
	case errors.Is(err, ErrJWTNotEnabled):
		return "JWT not enabled on this server"
	case errors.Is(err, ErrUnknownKey), errors.Is(err, ErrRevokedKey), errors.Is(err, ErrKeysNotConfigured):
		return "unknown API key"
	case errors.Is(err, ErrUnknownEnterprise):
		if errors.Is(err, errOperatorEnterprise) {
			return "the token's enterprise is unknown or disabled"
		}
		return "unknown API key"
	case errors.Is(err, ErrUnsupportedScheme):
		return "unsupported authorization scheme: send Authorization: Bearer <credential>"
	case errors.Is(err, ErrAmbiguousCredentials):
		return "more than one credential on the request"
	case errors.Is(err, ErrMalformedCredentials):
		return "malformed credentials"
	case errors.Is(err, ErrSessionEnded):
		return "console session ended: sign in again"
	case errors.Is(err, ErrLinkUsed):
		return "sign-in link unknown, expired or already used: ask for a new one"
	}
	return "invalid credentials"
}

// errOperatorEnterprise marks an operator token whose (verified)
// enterprise claim names no active enterprise.
var errOperatorEnterprise = errors.New("operator's enterprise")

// claimsError is a verified token whose claims Switchboard refuses; the
// problem names the claim, which only the token's holder sees.
type claimsError struct{ problem string }

func (e *claimsError) Error() string { return "claims: " + e.problem }

// Invalid marks reason (a refusal found outside this package, e.g. a
// console session the store no longer has) as invalid credentials.
func Invalid(reason error) error { return invalid(reason) }

// invalid builds the error for a rejected credential: it matches both
// ErrInvalidCredentials and reason, and its text is safe for logs.
func invalid(reason error) error {
	return fmt.Errorf("%w: %w", ErrInvalidCredentials, reason)
}

// ForbiddenError says which scope or role an action needed. Its message is
// meant to be shown to the caller (as the Laravel service did).
type ForbiddenError struct {
	Action Action
	// Kind of credential that was refused.
	Kind Kind
	// AnyOf lists the scopes (API keys) or roles (operators), any one of
	// which would have allowed the action. Empty when the refusal is not
	// about scopes or roles (see Reason).
	AnyOf []string
	// Reason is set when the refusal is structural, e.g. an action confined
	// to an enterprise requested by a credential without one.
	Reason string
}

func (e *ForbiddenError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s not allowed: %s", e.Action, e.Reason)
	}
	what := "role"
	if e.Kind == KindAPIKey {
		what = "scope"
	}
	return fmt.Sprintf("%s not allowed: requires %s %s", e.Action, what, strings.Join(e.AnyOf, " or "))
}

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }
