package load

import (
	"os"
	"path/filepath"
	"testing"
)

// Every queued line reaches the file, in order, by Close.
func TestAsyncLogWritesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agents.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := newAsyncLog(f)
	buf := []byte("line 1\n")
	for _, s := range []string{"line 1\n", "line 2\n", "line 3\n"} {
		copy(buf, s) // the caller reuses its buffer, as slog does
		if n, err := l.Write(buf); n != len(buf) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "line 1\nline 2\nline 3\n" {
		t.Fatalf("file = %q", got)
	}
	if l.dropped.Load() != 0 {
		t.Fatalf("dropped %d lines", l.dropped.Load())
	}
}
