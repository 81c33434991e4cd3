package main

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"900MiB", 900 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"64KiB", 64 << 10, ""},
		{"512B", 512, ""},
		{" 2 GiB ", 2 << 30, ""},
		{"1GB", 0, "not a size"},
		{"-1MiB", 0, "not a size"},
		{"1.5GiB", 0, "not a size"},
		{"", 0, "not a size"},
		{"99999999999TiB", 0, "too large"},
	}
	for _, tc := range tests {
		got, err := parseByteSize(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseByteSize(%q) = %d, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
