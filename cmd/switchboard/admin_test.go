package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminCommands(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "sb.db")
	secret := filepath.Join(dir, "jwt.secret")
	os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600)
	sh := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, &out, &out)
		return code, out.String()
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"create enterprise", []string{"enterprise", "create", "--db", db, "--number", "0367", "--name", "june"}, 0, "Created enterprise 0367 (june)"},
		{"duplicate number changes nothing", []string{"enterprise", "create", "--db", db, "--number", "0367", "--name", "other"}, 1, "conflict"},
		{"bad number", []string{"enterprise", "create", "--db", db, "--number", "03a7", "--name", "x"}, 1, "number"},
		{"missing name", []string{"enterprise", "create", "--db", db, "--number", "0400"}, 2, "--name is required"},
		{"list", []string{"enterprise", "list", "--db", db}, 0, "0367"},
		{"agent for unknown enterprise", []string{"agent", "create", "--db", db, "--enterprise", "9999", "--name", "pbx"}, 1, "not found"},
		{"agent", []string{"agent", "create", "--db", db, "--enterprise", "0367", "--name", "pbx-june"}, 0, "sbat_agt_"},
		{"revoke unknown agent", []string{"agent", "revoke", "--db", db, "agt_nope"}, 1, "not found"},
		{"a second pbx-june", []string{"agent", "create", "--db", db, "--enterprise", "0367", "--name", "pbx-june"}, 1, `already has a PBX named "pbx-june"`},
		{"revoke by name needs the enterprise", []string{"agent", "revoke", "--db", db, "pbx-june"}, 2, "a name needs --enterprise"},
		{"revoke an unknown name", []string{"agent", "revoke", "--db", db, "--enterprise", "0367", "pbx-nope"}, 1, `no live PBX named "pbx-nope"`},
		{"revoke by name", []string{"agent", "revoke", "--db", db, "--enterprise", "0367", "pbx-june"}, 0, "Revoked agent agt_"},
		{"the name is free again", []string{"agent", "create", "--db", db, "--enterprise", "0367", "--name", "pbx-june"}, 0, "sbat_agt_"},
		{"bad scope", []string{"apikey", "create", "--db", db, "--enterprise", "0367", "--scopes", "originate,root"}, 1, "root"},
		{"api key", []string{"apikey", "create", "--db", db, "--enterprise", "0367", "--scopes", "originate"}, 0, "sbk_key_"},
		{"unknown verb", []string{"agent", "fly", "--db", db}, 2, "unknown command"},
		{"jwt without roles", []string{"jwt", "mint", "--secret-file", secret, "--sub", "op"}, 2, "--roles is required"},
		{"jwt unknown role", []string{"jwt", "mint", "--secret-file", secret, "--sub", "op", "--enterprise", "0367", "--roles", "god"}, 1, "god"},
		{"jwt", []string{"jwt", "mint", "--secret-file", secret, "--sub", "op", "--enterprise", "0367", "--roles", "supervisor"}, 0, "eyJ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := sh(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q; want exit %d containing %q", code, out, tc.code, tc.want)
			}
		})
	}
	// --json output is one object, with the token shown once.
	code, out := sh("agent", "create", "--db", db, "--enterprise", "0367", "--name", "pbx-2", "--json")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || !strings.HasPrefix(m["token"].(string), "sbat_agt_") {
		t.Fatalf("agent create --json: %d %q", code, out)
	}
	code, out = sh("agent", "list", "--db", db, "--json")
	if code != 0 || strings.Contains(out, m["token"].(string)) || !strings.Contains(out, "pbx-2") {
		t.Fatalf("agent list must not show tokens: %d %q", code, out)
	}
}
