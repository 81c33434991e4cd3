//go:build unix

package ops

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// statInfo is a FileInfo with a chosen owner and link count.
type statInfo struct {
	fs.FileInfo
	st syscall.Stat_t
}

func (s statInfo) Sys() any { return &s.st }

func TestRefuseFileOwnership(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "x.wav")
	if err := os.WriteFile(f, []byte("RIFF"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Lstat(f)
	di, _ := os.Stat(dir)
	file := func(uid uint32, links uint64) os.FileInfo {
		s := statInfo{FileInfo: fi}
		s.st.Uid, s.st.Nlink = uid, links
		return s
	}
	d := statInfo{FileInfo: di}
	d.st.Uid = 113 // asterisk
	for _, tc := range []struct {
		fi   os.FileInfo
		want string
	}{
		{file(113, 1), ""},
		{file(0, 1), "owned by uid 0"},
		{file(113, 2), "2 hard links"},
	} {
		if got := refuseFile(tc.fi, d); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("refuseFile = %q, want %q", got, tc.want)
		}
	}
}
