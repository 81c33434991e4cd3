//go:build unix

package ops

import (
	"os"
	"syscall"
)

// fileOwner returns the owner's uid and the hard link count of fi.
func fileOwner(fi os.FileInfo) (uid uint32, links uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, uint64(st.Nlink), true
}
