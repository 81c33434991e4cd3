package ops

import (
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Readers of AMI header values, shared by the operations.

// is reports whether header k of m equals v, as Asterisk compares names:
// without regard to case.
func is(m *ami.Message, k, v string) bool { return strings.EqualFold(m.Get(k), v) }

// atoi reads a small decimal header; anything else is 0.
func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// known drops Asterisk's placeholder for an unset caller id.
func known(s string) string {
	if s == "<unknown>" {
		return ""
	}
	return s
}

// unixTime reads Asterisk's epoch seconds; 0 means never.
func unixTime(s string) *time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return nil
	}
	t := time.Unix(n, 0).UTC()
	return &t
}
