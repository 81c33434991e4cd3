package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeValidatesBeforeOpeningTheStore: a bad flag is refused before
// the database is created or migrated.
func TestServeValidatesBeforeOpeningTheStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"listen address", []string{"--listen", "bogus"}, `listen address "bogus"`},
		{"listen port", []string{"--listen", "127.0.0.1:notaport"}, `bad port "notaport"`},
		{"tls pair", []string{"--tls-cert-file", "x.pem"}, "TLS certificate and key files go together"},
		{"events", []string{"--webhook-max-age", "200h"}, "--webhook-max-age"},
		{"status timeout", []string{"--agent-status-timeout", "1s"}, "--agent-status-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "switchboard.db")
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--db", "sqlite:" + db}, tc.args...), &bytes.Buffer{}, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Fatalf("the database was created: %v", err)
			}
		})
	}
}
