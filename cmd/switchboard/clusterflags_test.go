package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
)

func TestClusterFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret")
	short := filepath.Join(dir, "short")
	os.WriteFile(good, []byte("0123456789abcdef0123456789abcdef0123\n"), 0o600)
	os.WriteFile(short, []byte("tiny"), 0o600)
	const pg = "postgres://sb@db/sb"
	for _, tc := range []struct {
		name string
		db   string
		args []string
		want string // "" for no error
	}{
		{"alone", "sqlite:x.db", nil, ""},
		{"clustered", pg, []string{"--cluster-secret-file", good, "--replica-url", "http://10.0.0.5:8080"}, ""},
		{"clustered on SQLite", "sqlite:x.db", []string{"--cluster-secret-file", good}, "needs a PostgreSQL --db"},
		{"short secret", pg, []string{"--cluster-secret-file", short}, "use at least 32"},
		{"missing secret file", pg, []string{"--cluster-secret-file", filepath.Join(dir, "nope")}, "--cluster-secret-file"},
		{"replica URL alone", pg, []string{"--replica-url", "http://10.0.0.5:8080"}, "--replica-url needs --cluster-secret-file"},
		{"zero heartbeat", pg, []string{"--cluster-heartbeat=0"}, "--cluster-heartbeat must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			var f clusterFlags
			f.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cp := controlplane.Config{DB: tc.db}
			err := f.apply(&cp)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("apply = %v, want %q", err, tc.want)
			}
			if tc.name == "clustered" && (string(cp.Cluster.Secret) != "0123456789abcdef0123456789abcdef0123" || cp.Cluster.Heartbeat != cluster.DefaultHeartbeat) {
				t.Fatalf("cluster config = %+v", cp.Cluster)
			}
		})
	}
}

// TestServeClusteredNeedsAReachableURL: a clustered replica listening on
// every interface must be told the URL the others call it at.
func TestServeClusteredNeedsAReachableURL(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef0123"), 0o600)
	var stdout, stderr strings.Builder
	code := run(t.Context(), []string{"serve", "--db", "postgres://sb@127.0.0.1:1/sb", "--listen", "0.0.0.0:8080", "--cluster-secret-file", secret}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "--replica-url") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "0123456789abcdef") {
		t.Fatal("the cluster secret was printed")
	}
}
