package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemPublic(t testing.TB, k crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestVerify(t *testing.T) {
	k := testKeys()
	clk := newClock()
	now := clk.Now()
	all, err := NewJWTVerifier(JWTConfig{
		HMACSecret: testSecret,
		PublicKeys: []crypto.PublicKey{k.rsa.Public(), k.ed.Public()},
		Now:        clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	rsaOnly, err := NewJWTVerifier(JWTConfig{PublicKeys: []crypto.PublicKey{k.rsa.Public()}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	hmacOnly, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	withIssAud, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret, Issuer: "https://idp.example", Audience: "switchboard", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := operatorClaims(now)
		edit(c)
		return c
	}
	rsaPEM := pemPublic(t, k.rsa.Public())
	noneToken := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, operatorClaims(now))

	tests := []struct {
		name      string
		v         *JWTVerifier
		token     string
		wantErr   error // nil: must verify
		wantRoles []string
		wantEnt   string
	}{
		{"HS256 valid", all, sign(t, jwt.SigningMethodHS256, testSecret, operatorClaims(now)), nil, []string{RoleSupervisor}, "0367"},
		{"RS256 valid", all, sign(t, jwt.SigningMethodRS256, k.rsa, operatorClaims(now)), nil, []string{RoleSupervisor}, "0367"},
		{"EdDSA valid", all, sign(t, jwt.SigningMethodEdDSA, k.ed, operatorClaims(now)), nil, []string{RoleSupervisor}, "0367"},
		{"RS256 by a key not configured", all, sign(t, jwt.SigningMethodRS256, k.rsa2, operatorClaims(now)), ErrTokenSignature, nil, ""},
		{"EdDSA by a key not configured", all, sign(t, jwt.SigningMethodEdDSA, k.ed2, operatorClaims(now)), ErrTokenSignature, nil, ""},
		{"HS256 wrong secret", all, sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long!!"), operatorClaims(now)), ErrTokenSignature, nil, ""},
		{"HS256 when only RSA configured", rsaOnly, sign(t, jwt.SigningMethodHS256, testSecret, operatorClaims(now)), ErrTokenAlgorithm, nil, ""},
		{"alg confusion: HS256 keyed with the RSA public key PEM", rsaOnly, sign(t, jwt.SigningMethodHS256, rsaPEM, operatorClaims(now)), ErrTokenAlgorithm, nil, ""},
		{"alg confusion with HMAC also configured", all, sign(t, jwt.SigningMethodHS256, rsaPEM, operatorClaims(now)), ErrTokenSignature, nil, ""},
		{"RS256 when only HMAC configured", hmacOnly, sign(t, jwt.SigningMethodRS256, k.rsa, operatorClaims(now)), ErrTokenAlgorithm, nil, ""},
		{"RS512 never accepted", all, sign(t, jwt.SigningMethodRS512, k.rsa, operatorClaims(now)), ErrTokenAlgorithm, nil, ""},
		{"HS512 never accepted", all, sign(t, jwt.SigningMethodHS512, testSecret, operatorClaims(now)), ErrTokenAlgorithm, nil, ""},
		{"alg none", all, noneToken, ErrTokenAlgorithm, nil, ""},
		{"alg none with a signature appended", all, noneToken + "c2ln", ErrTokenAlgorithm, nil, ""},
		{"tampered payload", all, tamper(t, sign(t, jwt.SigningMethodHS256, testSecret, operatorClaims(now))), ErrTokenSignature, nil, ""},
		{"expired", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), ErrTokenExpired, nil, ""},
		{"expired within leeway", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-20 * time.Second).Unix() })), nil, []string{RoleSupervisor}, "0367"},
		{"nbf in the future", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), ErrTokenNotYetValid, nil, ""},
		{"nbf within leeway", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(20 * time.Second).Unix() })), nil, []string{RoleSupervisor}, "0367"},
		{"iat in the future", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })), ErrTokenNotYetValid, nil, ""},
		{"no exp", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "exp") })), ErrTokenClaims, nil, ""},
		{"no sub", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "sub") })), ErrTokenClaims, nil, ""},
		{"sub with a newline", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["sub"] = "op\nFAKE log line" })), ErrTokenClaims, nil, ""},
		{"no enterprise for supervisor", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "enterprise") })), ErrTokenClaims, nil, ""},
		{"enterprise as a number", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["enterprise"] = 367 })), ErrMalformedCredentials, nil, ""},
		{"no roles claim", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { delete(c, "roles") })), ErrTokenClaims, nil, ""},
		{"roles not an array", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["roles"] = "supervisor" })), ErrMalformedCredentials, nil, ""},
		{"platform admin without enterprise", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			delete(c, "enterprise")
			c["roles"] = []string{RolePlatformAdmin}
		})), nil, []string{RolePlatformAdmin}, ""},
		{"unknown roles dropped, duplicates folded", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["roles"] = []string{"root", RoleOperator, "SUPERVISOR", RoleOperator, RoleTelecomAdmin}
		})), nil, []string{RoleOperator, RoleTelecomAdmin}, "0367"},
		{"only unknown roles: verifies with none", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["roles"] = []string{"admin"} })), nil, nil, "0367"},
		{"unknown roles do not exempt from enterprise", all, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			delete(c, "enterprise")
			c["roles"] = []string{"platform-admin"}
		})), ErrTokenClaims, nil, ""},
		{"iss and aud match", withIssAud, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["iss"] = "https://idp.example"
			c["aud"] = []string{"crm", "switchboard"}
		})), nil, []string{RoleSupervisor}, "0367"},
		{"wrong iss", withIssAud, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) {
			c["iss"] = "https://evil.example"
			c["aud"] = "switchboard"
		})), ErrTokenClaims, nil, ""},
		{"missing aud", withIssAud, sign(t, jwt.SigningMethodHS256, testSecret, with(func(c jwt.MapClaims) { c["iss"] = "https://idp.example" })), ErrTokenClaims, nil, ""},
		{"not a JWT", all, "hello", ErrMalformedCredentials, nil, ""},
		{"four segments", all, "a.b.c.d", ErrMalformedCredentials, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject == "" || !slices.Equal(c.Roles, tc.wantRoles) || c.Enterprise != tc.wantEnt {
					t.Errorf("claims = %+v, want roles %v enterprise %q", c, tc.wantRoles, tc.wantEnt)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Verify error = %v, want %v and ErrInvalidCredentials", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.token) || strings.Contains(err.Error(), "FAKE") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

// tamper changes the payload to claim another role, keeping the signature.
func tamper(t *testing.T, token string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), RoleSupervisor, RoleTelecomAdmin, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestVerifyLeewayIsConfigurable(t *testing.T) {
	clk := newClock()
	v, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret, Leeway: time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := operatorClaims(clk.Now())
	c["exp"] = clk.Now().Add(-5 * time.Second).Unix()
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, testSecret, c)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("5 s past exp with 1 s leeway: %v", err)
	}
}

func TestJWTConfigValidate(t *testing.T) {
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name string
		cfg  JWTConfig
		want string
	}{
		{"nothing", JWTConfig{}, "no HMAC secret and no public keys"},
		{"short secret", JWTConfig{HMACSecret: []byte("short")}, "HMAC secret is 5 bytes, need at least 32"},
		{"small RSA", JWTConfig{PublicKeys: []crypto.PublicKey{&small.PublicKey}}, "public key 1: RSA key is 1024 bits, need at least 2048"},
		{"ECDSA", JWTConfig{PublicKeys: []crypto.PublicKey{k.ed.Public(), &ec.PublicKey}}, "public key 2: unsupported key type *ecdsa.PublicKey"},
		{"private key given", JWTConfig{PublicKeys: []crypto.PublicKey{k.rsa}}, "unsupported key type *rsa.PrivateKey"},
		{"negative leeway", JWTConfig{HMACSecret: testSecret, Leeway: -time.Second}, "leeway -1s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJWTVerifier(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewJWTVerifier error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMintHS256(t *testing.T) {
	clk := newClock()
	v, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MintHS256(testSecret, OperatorClaims{Subject: "op-1", Enterprise: "0367", Roles: []string{RoleOperator}, IssuedAt: clk.Now()}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(minted): %v", err)
	}
	if c.Subject != "op-1" || c.Enterprise != "0367" || !c.ExpiresAt.Equal(clk.Now().Add(10*time.Minute)) {
		t.Errorf("claims %+v", c)
	}
	clk.Advance(10*time.Minute + DefaultLeeway + time.Second)
	if _, err := v.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("after ttl: %v", err)
	}

	bad := []struct {
		name   string
		secret []byte
		c      OperatorClaims
		ttl    time.Duration
		want   string
	}{
		{"short secret", []byte("x"), OperatorClaims{Subject: "a", Enterprise: "1", Roles: []string{RoleOperator}}, time.Hour, "secret is 1 bytes"},
		{"no ttl", testSecret, OperatorClaims{Subject: "a", Enterprise: "1", Roles: []string{RoleOperator}}, 0, "ttl 0s must be positive"},
		{"typo role", testSecret, OperatorClaims{Subject: "a", Enterprise: "1", Roles: []string{"supervisr"}}, time.Hour, `unknown role "supervisr"`},
		{"no roles", testSecret, OperatorClaims{Subject: "a", Enterprise: "1"}, time.Hour, "no roles"},
		{"no sub", testSecret, OperatorClaims{Enterprise: "1", Roles: []string{RoleOperator}}, time.Hour, `"sub" missing`},
		{"no enterprise", testSecret, OperatorClaims{Subject: "a", Roles: []string{RoleOperator}}, time.Hour, `"enterprise" missing`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MintHS256(tc.secret, tc.c, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("MintHS256 error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadHMACSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s32 := strings.Repeat("s", 32)
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{"exact", write("a", s32), s32, ""},
		{"trailing newline trimmed once", write("b", s32+"\n"), s32, ""},
		{"CRLF trimmed", write("c", s32+"\r\n"), s32, ""},
		{"inner and leading spaces kept", write("d", " "+s32+" \n"), " " + s32 + " ", ""},
		{"short after trim", write("e", strings.Repeat("s", 31)+"\n"), "", "is 31 bytes, need at least 32"},
		{"empty", write("f", ""), "", "is 0 bytes"},
		{"missing", filepath.Join(dir, "nope"), "", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadHMACSecret(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoadPublicKeys(t *testing.T) {
	k := testKeys()
	rsaPEM := pemPublic(t, k.rsa.Public())
	edPEM := pemPublic(t, k.ed.Public())
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa2.PublicKey)})
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ed)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.ed2.Public(), k.ed2)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPEM := pemPublic(t, &ec.PublicKey)

	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte
		want    int
		wantErr string
	}{
		{"RSA, Ed25519, PKCS1 and certificate", slices.Concat(rsaPEM, []byte("\n"), edPEM, pkcs1, cert), 4, ""},
		{"private key refused", slices.Concat(rsaPEM, priv), 0, `PEM block 2: "PRIVATE KEY": this is a private key`},
		{"ECDSA refused", ecPEM, 0, "PEM block 1: unsupported key type *ecdsa.PublicKey"},
		{"trailing garbage", slices.Concat(edPEM, []byte("garbage")), 0, "unparsable data after 1 PEM block(s)"},
		{"empty", nil, 0, "no PEM public key found"},
		{"unknown block", pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte{1}}), 0, `unsupported PEM type "FOO"`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			keys, err := LoadPublicKeys(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(keys) != tc.want {
				t.Fatalf("got %d keys, %v; want %d", len(keys), err, tc.want)
			}
			// The loaded keys really verify tokens from their private keys.
			clk := newClock()
			v, err := NewJWTVerifier(JWTConfig{PublicKeys: keys, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range []string{
				sign(t, jwt.SigningMethodRS256, k.rsa, operatorClaims(clk.Now())),
				sign(t, jwt.SigningMethodRS256, k.rsa2, operatorClaims(clk.Now())),
				sign(t, jwt.SigningMethodEdDSA, k.ed, operatorClaims(clk.Now())),
				sign(t, jwt.SigningMethodEdDSA, k.ed2, operatorClaims(clk.Now())),
			} {
				if _, err := v.Verify(tok); err != nil {
					t.Errorf("Verify with loaded keys: %v", err)
				}
			}
		})
	}
}

// TestVerifyMaxTTL: a token meant to live longer than MaxTTL (exp − iat,
// or exp − now for one without iat) is refused, however it was signed.
func TestVerifyMaxTTL(t *testing.T) {
	now := time.Now()
	v, err := NewJWTVerifier(JWTConfig{HMACSecret: testSecret, MaxTTL: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(iat, exp time.Time) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "op", "enterprise": "0367", "roles": []string{"operator"}, "exp": exp.Unix()}
		if !iat.IsZero() {
			c["iat"] = iat.Unix()
		}
		return c
	}
	for _, tc := range []struct {
		name     string
		iat, exp time.Time
		ok       bool
	}{
		{"8h", now, now.Add(8 * time.Hour), true},
		{"9h", now, now.Add(9 * time.Hour), false},
		{"issued long ago, 1h left", now.Add(-30 * time.Hour), now.Add(time.Hour), false},
		{"no iat, 9h left", time.Time{}, now.Add(9 * time.Hour), false},
		{"no iat, 1h left", time.Time{}, now.Add(time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, claims(tc.iat, tc.exp))
			_, err := v.Verify(tok)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !strings.Contains(Reason(err), "over this server's maximum 8h0m0s (--jwt-max-ttl)") {
				t.Fatalf("reason %q", Reason(err))
			}
		})
	}
}
