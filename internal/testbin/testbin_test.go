package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildOnceAndRemove(t *testing.T) {
	s := New("testbin-test-", "switchboard")
	dir, err := s.Dir()
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Dir()
	if err != nil || again != dir {
		t.Fatalf("second Dir() = %q, %v; want %q from the first build", again, err, dir)
	}
	out, err := exec.Command(filepath.Join(dir, "switchboard"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "switchboard ") {
		t.Fatalf("built binary: %v %q", err, out)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after Remove: %v", dir, err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestRemoveWithoutBuild(t *testing.T) {
	if err := New("testbin-unused-", "switchboard").Remove(); err != nil {
		t.Fatal(err)
	}
}
