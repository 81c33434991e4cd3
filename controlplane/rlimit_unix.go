//go:build unix

package controlplane

import "syscall"

// openFilesLimit is the soft RLIMIT_NOFILE (the Go runtime raised it to
// the hard limit at start-up); 0 if unknown.
func openFilesLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
