package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// TestUnauthorizedSaysWhy: a 401 on /v1 names what is wrong with the
// caller's own credential, and never tells an unknown API key from a
// revoked one.
func TestUnauthorizedSaysWhy(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	revoked := s.APIKey(t, "0367")
	id, _ := auth.ParseAPIKeyID(revoked)
	must(t, s.Store().RevokeAPIKey(context.Background(), id))
	now := time.Now()
	expired, err := auth.MintHS256(s.JWTSecret, auth.OperatorClaims{Subject: "op", Enterprise: "0367", Roles: []string{auth.RoleOperator},
		IssuedAt: now.Add(-2 * time.Hour)}, time.Hour)
	must(t, err)
	otherSecret, err := auth.MintHS256([]byte(strings.Repeat("x", 40)), auth.OperatorClaims{Subject: "op", Enterprise: "0367", Roles: []string{auth.RoleOperator}}, time.Hour)
	must(t, err)
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "op", "enterprise": "0367", "roles": []string{"operator"},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}).SignedString(s.JWTSecret)
	must(t, err)
	noEnterprise, err := auth.MintHS256(s.JWTSecret, auth.OperatorClaims{Subject: "op", Enterprise: "9999", Roles: []string{auth.RoleOperator}}, time.Hour)
	must(t, err)
	unknown := "sbk_key_aaaaaaaaaaaaaaaa_" + strings.Repeat("c", 52)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"no credentials", "", "missing credentials"},
		{"unknown API key", unknown, "unknown API key"},
		{"revoked API key", revoked, "unknown API key"},
		{"expired JWT", expired, "token expired"},
		{"JWT of another issuer", otherSecret, "signature invalid"},
		{"JWT with an algorithm not accepted", hs512, "unsupported algorithm"},
		{"JWT of an unknown enterprise", noEnterprise, "the token's enterprise is unknown or disabled"},
		{"not a credential", "hello", "malformed credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(t, "GET", "/v1/pbxs", tc.token, nil)
			if r.Status != 401 {
				t.Fatalf("status %d, want 401: %s", r.Status, r.Body)
			}
			if got := jsonErrorMessage(t, r); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("message %q, want it to start with %q", got, tc.want)
			}
		})
	}
}
