package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// byteUnits are GOMEMLIMIT's suffixes.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseByteSize reads a size the way GOMEMLIMIT does: a whole number of
// bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseByteSize(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: want bytes, or a number with B, KiB, MiB, GiB or TiB (e.g. 900MiB)", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// applyMemoryLimit sets the Go runtime's soft memory limit from
// --memory-limit; "0" or empty leaves GOMEMLIMIT (or no limit) in place.
func applyMemoryLimit(flag string) error {
	if flag == "" {
		return nil
	}
	n, err := parseByteSize(flag)
	if err != nil {
		return usagef("--memory-limit: %v", err)
	}
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
	return nil
}
