package auth

import (
	"fmt"
	"testing"
)

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrMissingCredentials, "missing credentials: send Authorization: Bearer <API key or operator JWT>"},
		{invalid(ErrUnknownKey), "unknown API key"},
		{invalid(ErrRevokedKey), "unknown API key"},
		{invalid(ErrUnknownEnterprise), "unknown API key"},
		{fmt.Errorf("operator: %w: %w", errOperatorEnterprise, invalid(ErrUnknownEnterprise)), "the token's enterprise is unknown or disabled"},
		{invalid(ErrTokenExpired), "token expired"},
		{invalid(ErrTokenSignature), "signature invalid"},
		{invalid(ErrTokenAlgorithm), "unsupported algorithm"},
		{invalid(ErrJWTNotEnabled), "JWT not enabled on this server"},
		{invalid(fmt.Errorf("%w: %w", ErrTokenClaims, &claimsError{problem: `"roles" missing`})), `token claims not accepted: "roles" missing`},
		{invalid(ErrUnsupportedScheme), "unsupported authorization scheme: send Authorization: Bearer <credential>"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
