//go:build !unix

package controlplane

// openFilesLimit is unknown here: the default bounds no connections.
func openFilesLimit() uint64 { return 0 }
