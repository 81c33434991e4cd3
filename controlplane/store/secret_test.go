package store

import (
	"strings"
	"testing"
)

func TestSecretShape(t *testing.T) {
	for _, k := range []secretKind{agentTokenKind, apiKeyKind} {
		t.Run(k.tokenPrefix, func(t *testing.T) {
			id, token, prefix := k.newSecret()
			if !strings.HasPrefix(id, k.idPrefix) || prefix != k.tokenPrefix+id || !strings.HasPrefix(token, prefix+"_") {
				t.Fatalf("id %q prefix %q token %q", id, prefix, token)
			}
			secret := strings.TrimPrefix(token, prefix+"_")
			if len(secret) != 52 || !isBase32(secret) {
				t.Fatalf("secret %q: want 52 lowercase base32 chars (32 bytes)", secret)
			}
			if got, ok := k.parse(token); !ok || got != id {
				t.Fatalf("parse(token) = %q, %v; want %q", got, ok, id)
			}
			if PublicID(token) != id {
				t.Fatalf("PublicID = %q, want %q", PublicID(token), id)
			}
			if _, token2, _ := k.newSecret(); token2 == token {
				t.Fatal("two secrets are equal")
			}
			if !secretMatches(token, hashSecret(token)) || secretMatches(token+"x", hashSecret(token)) {
				t.Fatal("secretMatches is wrong")
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	_, good, _ := agentTokenKind.newSecret()
	id, _ := agentTokenKind.parse(good)
	secret := good[strings.LastIndexByte(good, '_')+1:]
	tests := map[string]string{
		"empty":          "",
		"no prefix":      strings.TrimPrefix(good, "sbat_"),
		"api key prefix": "sbk_" + strings.TrimPrefix(good, "sbat_"),
		"short secret":   good[:len(good)-1],
		"long secret":    good + "a",
		"upper":          strings.ToUpper(good),
		"padding":        "sbat_" + id + "_" + secret[:51] + "=",
		"bad id prefix":  "sbat_key_" + strings.TrimPrefix(id, "agt_") + "_" + secret,
		"extra part":     "sbat_" + id + "_x_" + secret,
		"no separator":   "sbat_" + id + secret,
		"space":          " " + good,
		"base32 digit 1": "sbat_" + id + "_1" + secret[1:],
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			if got, ok := agentTokenKind.parse(tok); ok {
				t.Fatalf("parse(%q) = %q, accepted", tok, got)
			}
			if PublicID(tok) != "" {
				t.Fatalf("PublicID(%q) = %q, want \"\"", tok, PublicID(tok))
			}
		})
	}
}

// PublicID is fed raw Authorization headers: it must never return more
// than the public id, whatever it is given.
func FuzzPublicID(f *testing.F) {
	_, a, _ := agentTokenKind.newSecret()
	_, k, _ := apiKeyKind.newSecret()
	for _, seed := range []string{a, k, "", "sbat_", "sbat_agt__", "sbk_key_aaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id := PublicID(token)
		if id == "" {
			return
		}
		if len(id) != 4+idLen || !strings.Contains(token, id) || strings.Contains(id, "_"+token[len(token)-secretLen:]) {
			t.Fatalf("PublicID(%q) = %q", token, id)
		}
		if !strings.HasPrefix(id, "agt_") && !strings.HasPrefix(id, "key_") {
			t.Fatalf("PublicID(%q) = %q: unknown kind", token, id)
		}
	})
}
