package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestSecondServeRefused: a second `switchboard serve` on the database of
// a running one refuses to start, naming the live one and the flags to
// add; the first keeps serving.
func TestSecondServeRefused(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "sb.db")
	first := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--db", db, "--listen", first, "--log-level", "error"}, io.Discard, io.Discard)
	}()
	eventually(t, 15*time.Second, "the first serve ready", func() bool {
		var v map[string]any
		code, err := getJSON("http://"+first+"/readyz", "", &v)
		return err == nil && code == 200
	})
	var stderr strings.Builder
	code := run(context.Background(), []string{"serve", "--db", db, "--listen", freeAddr(t)}, io.Discard, &stderr)
	for _, want := range []string{"another control plane replica is running on this database", "http://" + first, "--cluster-secret-file", "--replica-url"} {
		if code == 0 || !strings.Contains(stderr.String(), want) {
			t.Fatalf("second serve: exit %d, stderr lacks %q:\n%s", code, want, stderr.String())
		}
	}
	var v map[string]any
	if code, err := getJSON("http://"+first+"/readyz", "", &v); err != nil || code != 200 {
		t.Fatalf("the first serve after the refusal: %d %v", code, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("first serve exited %d", code)
	}
}
