package auth

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func benchmarkAuthenticate(b *testing.B, token string) {
	fx := newFixture(b)
	r := request("/v1/calls", "Bearer "+token)
	if _, err := fx.a.Authenticate(r, false); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := fx.a.Authenticate(r, false); err != nil {
			b.Fatal(err)
		}
	}
}

// The API key path excludes the store lookup (an in-memory map here); the
// real cost adds one indexed query on the token's SHA-256.
func BenchmarkAuthenticateAPIKey(b *testing.B) { benchmarkAuthenticate(b, goodKey) }

func BenchmarkAuthenticateJWT(b *testing.B) {
	k := testKeys()
	now := newClock().Now()
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"HS256", sign(b, jwt.SigningMethodHS256, testSecret, operatorClaims(now))},
		{"RS256", sign(b, jwt.SigningMethodRS256, k.rsa, operatorClaims(now))},
		{"EdDSA", sign(b, jwt.SigningMethodEdDSA, k.ed, operatorClaims(now))},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkAuthenticate(b, tc.tok) })
	}
}

func BenchmarkTicketIssueRedeem(b *testing.B) {
	tk, err := NewTickets(TicketConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := tk.Issue(context.Background(), ticketPrincipal, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tk.Redeem(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}
