package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the agent free of what only the control plane
// needs: a PBX must not carry database drivers, and no test code may be
// linked into the daemon.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "github.com/switchboard-pbx/switchboard/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/jackc/pgx", "modernc.org/sqlite", "testing", "github.com/switchboard-pbx/switchboard/controlplane", "github.com/switchboard-pbx/switchboard/protocol/ami/amitest"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("agent links %s", dep)
			}
		}
	}
}
