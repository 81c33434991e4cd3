package auth

import (
	"bytes"
	"crypto"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys shaped like the store's: sbk_key_<16 base32>_<52 base32>.
const (
	goodKey     = "sbk_key_k1a2b3cdefghijkl_s3cr3ts3cr3ts3cr3ts3cr3ts3cr3ts3cr3ts3cr3ts3cr3tabcd"
	revokedKey  = "sbk_key_k9oldabcdefghijk_0lds3cr3t0lds3cr3t0lds3cr3t0lds3cr3t0lds3cr3tabcdef"
	otherKey    = "sbk_key_k7zzabcdefghijkl_notinthestorenotinthestorenotinthestoreabcdefghijkl"
	inactiveKey = "sbk_key_k5inactiveabcdef_inactivesecretinactivesecretinactivesecretabcdefgh"
)

type fixture struct {
	a    *Authenticator
	clk  *testClock
	logs *bytes.Buffer
	keys *memKeys
	ents *memEnterprises
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	k := testKeys()
	f := &fixture{clk: newClock(), logs: &bytes.Buffer{}}
	f.keys = &memKeys{
		keys: map[string]Key{
			goodKey:     {ID: "key_k1a2b3cdefghijkl", EnterpriseID: 7, EnterpriseNumber: "0367", Scopes: []string{ScopeOriginate, ScopeChannelsRead}},
			revokedKey:  {ID: "key_k9oldabcdefghijk", EnterpriseID: 7, EnterpriseNumber: "0367", Scopes: []string{ScopeOriginate}},
			inactiveKey: {ID: "key_k5inactiveabcdef", EnterpriseID: 8, EnterpriseNumber: "0400", Scopes: []string{ScopeOriginate}},
		},
		revoked:  map[string]bool{revokedKey: true},
		inactive: map[string]bool{inactiveKey: true},
	}
	f.ents = &memEnterprises{ids: map[string]int64{"0367": 7, "0500": 9}}
	v, err := NewJWTVerifier(JWTConfig{
		HMACSecret: testSecret,
		PublicKeys: []crypto.PublicKey{k.rsa.Public(), k.ed.Public()},
		Now:        f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = New(Config{
		Keys:        f.keys,
		Enterprises: f.ents,
		JWT:         v,
		Logger:      slog.New(slog.NewTextHandler(f.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func request(target string, authorization ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for _, h := range authorization {
		r.Header.Add("Authorization", h)
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	k := testKeys()
	now := f.clk.Now()
	hs := sign(t, jwt.SigningMethodHS256, testSecret, operatorClaims(now))
	rs := sign(t, jwt.SigningMethodRS256, k.rsa, operatorClaims(now))
	ed := sign(t, jwt.SigningMethodEdDSA, k.ed, operatorClaims(now))
	expired := operatorClaims(now.Add(-2 * time.Hour))
	unknownEnt := operatorClaims(now)
	unknownEnt["enterprise"] = "9999"
	admin := operatorClaims(now)
	delete(admin, "enterprise")
	admin["roles"] = []string{RolePlatformAdmin}
	wrongSig := sign(t, jwt.SigningMethodRS256, k.rsa2, operatorClaims(now))
	q := url.QueryEscape

	keyPrincipal := Principal{Kind: KindAPIKey, ID: "key_k1a2b3cdefghijkl", EnterpriseID: 7, EnterpriseNumber: "0367", Scopes: []string{ScopeOriginate, ScopeChannelsRead}}
	opPrincipal := Principal{Kind: KindOperator, ID: "op-42", EnterpriseID: 7, EnterpriseNumber: "0367", Roles: []string{RoleSupervisor}}

	tests := []struct {
		name       string
		r          *http.Request
		allowQuery bool
		want       Principal
		wantErr    error
		wantReason error
	}{
		{"missing header", request("/v1/channels"), false, Principal{}, ErrMissingCredentials, nil},
		{"blank header", request("/v1/channels", "   "), false, Principal{}, ErrMissingCredentials, nil},
		{"bearer without token", request("/v1/channels", "Bearer "), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"basic scheme", request("/v1/channels", "Basic dXNlcjpwYXNz"), false, Principal{}, ErrInvalidCredentials, ErrUnsupportedScheme},
		{"token without scheme", request("/v1/channels", goodKey), false, Principal{}, ErrInvalidCredentials, ErrUnsupportedScheme},
		{"two tokens", request("/v1/channels", "Bearer "+goodKey+" "+goodKey), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"two Authorization headers", request("/v1/channels", "Bearer "+goodKey, "Bearer "+goodKey), false, Principal{}, ErrInvalidCredentials, ErrAmbiguousCredentials},
		{"api key", request("/v1/channels", "Bearer "+goodKey), false, keyPrincipal, nil, nil},
		{"scheme case-insensitive", request("/v1/channels", "bEARER  "+goodKey), false, keyPrincipal, nil, nil},
		{"unknown key", request("/v1/channels", "Bearer "+otherKey), false, Principal{}, ErrInvalidCredentials, ErrUnknownKey},
		{"revoked key", request("/v1/channels", "Bearer "+revokedKey), false, Principal{}, ErrInvalidCredentials, ErrRevokedKey},
		{"key of an inactive enterprise", request("/v1/channels", "Bearer "+inactiveKey), false, Principal{}, ErrInvalidCredentials, ErrUnknownEnterprise},
		{"key without secret", request("/v1/channels", "Bearer sbk_key_k1a2b3cdefghijkl_"), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"key id with odd bytes", request("/v1/channels", "Bearer sbk_k1/../_secret"), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"oversized token", request("/v1/channels", "Bearer sbk_k1_"+strings.Repeat("x", DefaultMaxTokenBytes)), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"HS256 operator", request("/v1/channels", "Bearer "+hs), false, opPrincipal, nil, nil},
		{"RS256 operator", request("/v1/channels", "Bearer "+rs), false, opPrincipal, nil, nil},
		{"EdDSA operator", request("/v1/channels", "Bearer "+ed), false, opPrincipal, nil, nil},
		{"expired JWT", request("/v1/channels", "Bearer "+sign(t, jwt.SigningMethodHS256, testSecret, expired)), false, Principal{}, ErrInvalidCredentials, ErrTokenExpired},
		{"wrong signature", request("/v1/channels", "Bearer "+wrongSig), false, Principal{}, ErrInvalidCredentials, ErrTokenSignature},
		{"unknown enterprise", request("/v1/channels", "Bearer "+sign(t, jwt.SigningMethodHS256, testSecret, unknownEnt)), false, Principal{}, ErrInvalidCredentials, ErrUnknownEnterprise},
		{"platform admin without enterprise", request("/v1/fleet", "Bearer "+sign(t, jwt.SigningMethodHS256, testSecret, admin)), false,
			Principal{Kind: KindOperator, ID: "op-42", Roles: []string{RolePlatformAdmin}}, nil, nil},
		{"garbage token", request("/v1/channels", "Bearer hello"), false, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"clientId allowed", request("/api/makecallexternal?code=150&clientId=" + q(goodKey)), true, keyPrincipal, nil, nil},
		{"clientId ignored where not allowed", request("/v1/channels?clientId=" + q(goodKey)), false, Principal{}, ErrMissingCredentials, nil},
		{"clientId unknown", request("/api/monitor?clientId=" + q(otherKey)), true, Principal{}, ErrInvalidCredentials, ErrUnknownKey},
		{"clientId revoked", request("/api/monitor?clientId=" + q(revokedKey)), true, Principal{}, ErrInvalidCredentials, ErrRevokedKey},
		{"clientId empty", request("/api/monitor?clientId="), true, Principal{}, ErrMissingCredentials, nil},
		{"clientId twice", request("/api/monitor?clientId=" + q(goodKey) + "&clientId=" + q(goodKey)), true, Principal{}, ErrInvalidCredentials, ErrAmbiguousCredentials},
		{"clientId and header", request("/api/monitor?clientId="+q(goodKey), "Bearer "+goodKey), true, Principal{}, ErrInvalidCredentials, ErrAmbiguousCredentials},
		{"JWT refused in clientId", request("/api/monitor?clientId=" + q(hs)), true, Principal{}, ErrInvalidCredentials, ErrMalformedCredentials},
		{"header still works on legacy routes", request("/api/makecallexternal", "Bearer "+goodKey), true, keyPrincipal, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.a.Authenticate(tc.r, tc.allowQuery)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				if p.Kind != tc.want.Kind || p.ID != tc.want.ID || p.EnterpriseID != tc.want.EnterpriseID ||
					p.EnterpriseNumber != tc.want.EnterpriseNumber || !slices.Equal(p.Scopes, tc.want.Scopes) || !slices.Equal(p.Roles, tc.want.Roles) {
					t.Fatalf("principal %+v, want %+v", p, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if tc.wantReason != nil && !errors.Is(err, tc.wantReason) {
				t.Fatalf("error %v, want reason %v", err, tc.wantReason)
			}
			if errors.Is(err, ErrMissingCredentials) == errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v must be exactly one of missing / invalid", err)
			}
		})
	}
	// Nothing secret reached the log, but refusals did, by public id.
	logs := f.logs.String()
	for _, secret := range []string{"s3cr3t", "0lds3cr3t", "notinthestore", "inactivesecret", hs, rs, ed, wrongSig[:20], strings.Split(hs, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret (%.12s…):\n%s", secret, logs)
		}
	}
	for _, want := range []string{"key_id=key_k9oldabcdefghijk", "key_id=key_k7zzabcdefghijkl", "key_id=key_k5inactiveabcdef", "api key revoked", "token expired", "unknown enterprise", `operator \"op-42\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestAuthenticateOutagesAreNotCredentialErrors(t *testing.T) {
	f := newFixture(t)
	hs := sign(t, jwt.SigningMethodHS256, testSecret, operatorClaims(f.clk.Now()))
	f.keys.outage = errOutage
	f.ents.outage = errOutage
	for _, token := range []string{goodKey, hs} {
		_, err := f.a.Authenticate(request("/v1/channels", "Bearer "+token), false)
		if !errors.Is(err, errOutage) || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrMissingCredentials) {
			t.Errorf("outage error %v: want errOutage, not a credential error (it must be a 5xx, not 401)", err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

func TestAuthenticateKeyWithoutEnterpriseFailsClosed(t *testing.T) {
	f := newFixture(t)
	f.keys.keys[otherKey] = Key{ID: "key_k7zzabcdefghijkl", Scopes: Scopes}
	_, err := f.a.Authenticate(request("/v1/channels", "Bearer "+otherKey), false)
	if err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("key without enterprise: %v, want an internal error", err)
	}
}

func TestAuthenticatorConfig(t *testing.T) {
	v, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "neither API keys"},
		{"jwt without enterprises", Config{JWT: v}, "without Enterprises"},
		{"negative max", Config{Keys: &memKeys{}, MaxTokenBytes: -1}, "MaxTokenBytes -1 is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %v, want %q", err, tc.want)
			}
		})
	}

	// Only the configured credential kind is accepted.
	keysOnly, err := New(Config{Keys: &memKeys{keys: map[string]Key{goodKey: {EnterpriseID: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MintHS256(testSecret, OperatorClaims{Subject: "op", Enterprise: "1", Roles: []string{RoleOperator}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keysOnly.Authenticate(request("/", "Bearer "+tok), false); !errors.Is(err, ErrJWTNotEnabled) || Reason(err) != "JWT not enabled on this server" {
		t.Errorf("JWT on a keys-only authenticator: %v", err)
	}
	p, err := keysOnly.Authenticate(request("/", "Bearer "+goodKey), false)
	if err != nil || p.ID != "key_k1a2b3cdefghijkl" {
		t.Errorf("key whose record has no ID should take the token's public id: %+v, %v", p, err)
	}
}

func TestAuthenticateToken(t *testing.T) {
	f := newFixture(t)
	if _, err := f.a.AuthenticateToken(t.Context(), ""); !errors.Is(err, ErrMissingCredentials) {
		t.Errorf("empty: %v", err)
	}
	if _, err := f.a.AuthenticateToken(t.Context(), "sbk_key_a_b c"); !errors.Is(err, ErrMalformedCredentials) {
		t.Errorf("space: %v", err)
	}
	p, err := f.a.AuthenticateToken(t.Context(), goodKey)
	if err != nil || p.ID != "key_k1a2b3cdefghijkl" {
		t.Errorf("good key: %+v, %v", p, err)
	}
}

func TestPrincipalIsACopy(t *testing.T) {
	f := newFixture(t)
	p, err := f.a.Authenticate(request("/", "Bearer "+goodKey), false)
	if err != nil {
		t.Fatal(err)
	}
	p.Scopes[0] = ScopeHangup
	if f.keys.keys[goodKey].Scopes[0] != ScopeOriginate {
		t.Fatal("principal shares its scopes slice with the key record")
	}
}

func TestParseAPIKeyID(t *testing.T) {
	tests := []struct {
		token string
		id    string
		ok    bool
	}{
		{goodKey, "key_k1a2b3cdefghijkl", true},
		{"sbk_abc_secret", "abc", true},
		{"sbk_key_a-b_c_s3cret", "key_a-b_c", true},
		{"sbk_abc", "", false},
		{"sbk__secret", "", false},
		{"sbk_key_abc_", "", false},
		{"sbk_a.b_secret", "", false},
		{"sbk_a/b_secret", "", false},
		{"sbk_" + strings.Repeat("a", 65) + "_s", "", false},
		{"sbk_key_abc_s\x7fcret", "", false},
		{"sbk_key_abc_s\x00cret", "", false},
		{"SBK_abc_secret", "", false},
		{"eyJhbGciOi.x.y", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.token, func(t *testing.T) {
			id, ok := ParseAPIKeyID(tc.token)
			if id != tc.id || ok != tc.ok {
				t.Fatalf("ParseAPIKeyID = %q, %v; want %q, %v", id, ok, tc.id, tc.ok)
			}
		})
	}
}
