package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// TestMain removes the binaries the end-to-end tests built (tens of MB
// per run) once every test is done. The admin commands do not see this
// machine's /etc/switchboard/switchboard.conf (a package test may be
// installing one right now): a test that wants one sets its own.
func TestMain(m *testing.M) {
	systemConfig = filepath.Join(os.TempDir(), "switchboard-test-no-system-config", "switchboard.conf")
	code := storetest.Run(m) // the cluster tests use PostgreSQL
	if err := bins.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test binaries:", err)
	}
	os.Exit(code)
}
