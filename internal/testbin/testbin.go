package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// module is the import path the commands are built from.
const module = "github.com/switchboard-pbx/switchboard/cmd/"

// Set is a group of commands built together on first use.
type Set struct {
	prefix string
	cmds   []string

	once sync.Once
	mu   sync.Mutex
	dir  string
	err  error
}

// New describes the commands (e.g. "switchboard") to build into a temp dir
// named prefix*; nothing is built until Dir is called.
func New(prefix string, cmds ...string) *Set {
	return &Set{prefix: prefix, cmds: cmds}
}

// Dir builds the commands the first time and returns the directory that
// holds them, one file per command name.
func (s *Set) Dir() (string, error) {
	s.once.Do(func() {
		dir, err := os.MkdirTemp("", s.prefix)
		s.mu.Lock()
		s.dir, s.err = dir, err
		s.mu.Unlock()
		if err != nil {
			return
		}
		for _, cmd := range s.cmds {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), module+cmd).CombinedOutput()
			if err != nil {
				s.mu.Lock()
				s.err = fmt.Errorf("build %s: %v\n%s", cmd, err, out)
				s.mu.Unlock()
				return
			}
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir, s.err
}

// Remove deletes the directory, if Dir made one. Call it from TestMain
// after m.Run.
func (s *Set) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	return err
}
