package store

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"
)

// Secrets look like
//
//	sbat_agt_<16 chars>_<52 chars>   agent token
//	sbk_key_<16 chars>_<52 chars>    API key
//
// The middle part is the record's public id (agt_…, key_…): safe to log
// and used to find the record. The last part is 32 random bytes. Both use
// lowercase base32 without padding, which has no '_', so the token splits
// unambiguously at its last '_'.
//
// Secrets are stored as SHA-256 hashes, not bcrypt/argon2: they are 256-bit
// random values, so there is nothing to brute-force and a slow hash would
// only slow down every authenticated request.

const (
	idRandomBytes     = 10 // 16 base32 chars
	secretRandomBytes = 32 // 52 base32 chars
)

var (
	tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)
	idLen         = tokenEncoding.EncodedLen(idRandomBytes)
	secretLen     = tokenEncoding.EncodedLen(secretRandomBytes)
)

// secretKind describes one family of tokens.
type secretKind struct {
	tokenPrefix string // "sbat_"
	idPrefix    string // "agt_"
}

var (
	agentTokenKind = secretKind{tokenPrefix: "sbat_", idPrefix: "agt_"}
	apiKeyKind     = secretKind{tokenPrefix: "sbk_", idPrefix: "key_"}
)

func randomBase32(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return strings.ToLower(tokenEncoding.EncodeToString(b))
}

// newSecret returns a fresh record id, the full token, and the token's
// public prefix (token minus secret) for display.
func (k secretKind) newSecret() (id, token, prefix string) {
	id = k.idPrefix + randomBase32(idRandomBytes)
	prefix = k.tokenPrefix + id
	token = prefix + "_" + randomBase32(secretRandomBytes)
	return id, token, prefix
}

// parse returns the record id of a well-formed token of this kind.
func (k secretKind) parse(token string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(token, k.tokenPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return "", false
	}
	id, secret := rest[:i], rest[i+1:]
	rnd, ok := strings.CutPrefix(id, k.idPrefix)
	if !ok || len(rnd) != idLen || len(secret) != secretLen || !isBase32(rnd) || !isBase32(secret) {
		return "", false
	}
	return id, true
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func hashSecret(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// secretMatches compares in constant time, so response timing says nothing
// about how much of a guessed secret was right.
func secretMatches(token, storedHash string) bool {
	h := hashSecret(token)
	return subtle.ConstantTimeCompare([]byte(h), []byte(storedHash)) == 1
}

// PublicID returns the public id inside an agent token or API key
// ("agt_…" or "key_…"), the only part of a secret that may be logged.
// It returns "" for anything that is not a well-formed token.
func PublicID(token string) string {
	for _, k := range []secretKind{agentTokenKind, apiKeyKind} {
		if id, ok := k.parse(token); ok {
			return id
		}
	}
	return ""
}
