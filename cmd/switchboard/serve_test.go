package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/connlimit"
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
		{"exempt addresses", []string{"--connection-limit-exempt", "10.0.0.0/8,lb.example"}, `"lb.example" is neither an address nor a CIDR prefix`},
		{"reserve", []string{"--max-connections", "50", "--reserved-connections", "50"}, "must be fewer than"},
		{"per address", []string{"--max-connections-per-ip", "-1"}, "out of range"},
		{"body timeout", []string{"--http-body-timeout", "0s"}, "--http-body-timeout must be positive"},
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

// TestServeConnectionFlags: the connection flags reach the control
// plane's configuration, with the flags' own zeros.
func TestServeConnectionFlags(t *testing.T) {
	parse := func(args ...string) serveFlags {
		t.Helper()
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		var f serveFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cfg, err := parse().controlPlane()
	if err != nil {
		t.Fatal(err)
	}
	want := controlplane.ConnLimits{PerIP: controlplane.DefaultMaxConnsPerIP, Exempt: controlplane.DefaultConnExempt,
		ReserveTimeout: connlimit.DefaultReserveTimeout, EvictAfter: connlimit.DefaultEvictAfter}
	if !reflect.DeepEqual(cfg.Conns, want) || cfg.IdleTimeout != controlplane.DefaultIdleTimeout || cfg.API.BodyTimeout != api.DefaultBodyTimeout {
		t.Fatalf("defaults: %+v idle %v body %v", cfg.Conns, cfg.IdleTimeout, cfg.API.BodyTimeout)
	}
	cfg, err = parse("--max-connections", "-1", "--max-connections-per-ip", "0", "--connection-limit-exempt", "",
		"--http-idle-timeout", "5s", "--http-write-timeout", "7s", "--evict-waiting-after", "-1s").controlPlane()
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Conns; c.Max != -1 || c.PerIP != -1 || c.Exempt == nil || len(c.Exempt) != 0 || c.EvictAfter != -time.Second ||
		cfg.IdleTimeout != 5*time.Second || cfg.API.WriteTimeout != 7*time.Second {
		t.Fatalf("set: %+v idle %v write %v", c, cfg.IdleTimeout, cfg.API.WriteTimeout)
	}
	if p, err := parsePrefixes(" 10.1.2.3 , fd00::/8"); err != nil || len(p) != 2 || p[0].String() != "10.1.2.3/32" || p[1].String() != "fd00::/8" {
		t.Fatalf("parsePrefixes: %v %v", p, err)
	}
}
