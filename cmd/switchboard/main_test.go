package main

import (
	"fmt"
	"os"
	"testing"
)

// TestMain removes the binaries the end-to-end tests built (tens of MB
// per run) once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := bins.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test binaries:", err)
	}
	os.Exit(code)
}
