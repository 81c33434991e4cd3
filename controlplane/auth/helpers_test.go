package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testClock is an injectable clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Date(2025, 11, 23, 11, 12, 58, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memKeys is an in-memory KeyLookup with the semantics the store adapter
// promises: unknown → ErrUnknownKey, revoked → ErrRevokedKey.
type memKeys struct {
	keys     map[string]Key
	revoked  map[string]bool
	inactive map[string]bool
	outage   error
}

func (m *memKeys) LookupAPIKey(_ context.Context, token string) (Key, error) {
	if m.outage != nil {
		return Key{}, m.outage
	}
	k, ok := m.keys[token]
	switch {
	case !ok:
		return Key{}, ErrUnknownKey
	case m.revoked[token]:
		return Key{}, ErrRevokedKey
	case m.inactive[token]:
		return Key{}, ErrUnknownEnterprise
	}
	return k, nil
}

type memEnterprises struct {
	ids    map[string]int64
	outage error
}

func (m *memEnterprises) EnterpriseIDByNumber(_ context.Context, number string) (int64, error) {
	if m.outage != nil {
		return 0, m.outage
	}
	id, ok := m.ids[number]
	if !ok {
		return 0, ErrUnknownEnterprise
	}
	return id, nil
}

var errOutage = errors.New("database is down")

// Real keys, generated once per test binary (RSA generation is slow).
var testKeys = sync.OnceValue(func() struct {
	rsa, rsa2 *rsa.PrivateKey
	ed, ed2   ed25519.PrivateKey
} {
	var k struct {
		rsa, rsa2 *rsa.PrivateKey
		ed, ed2   ed25519.PrivateKey
	}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	_, k.ed2, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// sign builds a token with any method and key, for tests that need tokens
// MintHS256 would refuse to make.
func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// operatorClaims returns valid claims at now, for tests to alter.
func operatorClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":        "op-42",
		"enterprise": "0367",
		"roles":      []string{RoleSupervisor},
		"iat":        now.Unix(),
		"exp":        now.Add(time.Hour).Unix(),
	}
}
