package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", " ", "Bearer", "Bearer ", "Bearer x", "bearer  sbk_a_b", "Basic Zm9v", "Bearer a b", "Bearer \x00", "Bearer é", "\tBearer\tx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := parseAuthorization(h, 64)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			if errors.Is(err, ErrMissingCredentials) == errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v is not exactly one of missing / invalid", err)
			}
			return
		}
		if tok == "" || len(tok) > 64 || !visibleASCII(tok) || !strings.Contains(h, tok) {
			t.Fatalf("bad token %q from %q", tok, h)
		}
		if !strings.EqualFold(strings.Fields(h)[0], "Bearer") {
			t.Fatalf("accepted scheme of %q", h)
		}
	})
}

// FuzzAuthenticate throws arbitrary headers and query strings at a fully
// configured Authenticator: it must never panic, never report an outage
// (there is none), and only ever accept the real credentials.
func FuzzAuthenticate(f *testing.F) {
	fx := newFixture(f)
	now := fx.clk.Now()
	hs := sign(f, jwt.SigningMethodHS256, testSecret, operatorClaims(now))
	ed := sign(f, jwt.SigningMethodEdDSA, testKeys().ed, operatorClaims(now))
	for _, s := range []struct{ h, q string }{
		{"Bearer " + goodKey, ""}, {"Bearer " + hs, ""}, {"Bearer " + ed, ""}, {"", "clientId=" + goodKey},
		{"Bearer " + revokedKey, ""}, {"Bearer sbk__", ""}, {"Bearer a.b.c", ""}, {"", "clientId=" + hs},
		{"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", ""}, {"", "clientId=%zz&clientId="},
	} {
		f.Add(s.h, s.q, true)
	}
	f.Fuzz(func(t *testing.T, header, query string, allowQuery bool) {
		fx.logs.Reset()
		r := request("/")
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		r.URL.RawQuery = query
		p, err := fx.a.Authenticate(r, allowQuery)
		if err != nil {
			if !errors.Is(err, ErrMissingCredentials) && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		switch {
		case p.Kind == KindAPIKey && p.ID == "key_k1a2b3cdefghijkl" && p.EnterpriseID == 7:
		case p.Kind == KindOperator && p.ID == "op-42" && p.EnterpriseID == 7:
		default:
			t.Fatalf("accepted %+v from header %q query %q", p, header, query)
		}
	})
}

func FuzzRedeemTicket(f *testing.F) {
	tk, err := NewTickets(TicketConfig{Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := tk.Issue(context.Background(), ticketPrincipal, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(TicketPrefix)
	f.Add(TicketPrefix + strings.Repeat("A", 75))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := tk.Redeem(context.Background(), s)
		if err == nil && (s != valid || p.ID != ticketPrincipal.ID) {
			t.Fatalf("redeemed %q as %+v", s, p)
		}
		if err != nil && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("error %v does not match ErrInvalidCredentials", err)
		}
	})
}

func FuzzParsePublicKeys(f *testing.F) {
	f.Add(pemPublic(f, testKeys().ed.Public()))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\n-----END RSA PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParsePublicKeys(data)
		if err == nil {
			for _, k := range keys {
				if checkPublicKey(k) != nil {
					t.Fatalf("returned unusable key %T", k)
				}
			}
		}
	})
}
