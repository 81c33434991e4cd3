package cluster

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Channel is the NOTIFY channel replicas talk on.
const Channel = "switchboard_cluster"

// Messages on Channel carry ids and numbers only, never events or
// secrets; one payload holds one or more, a line each:
//
//	e 12:100-105 13:7-9        enterprise 12 stored events 100..105, 13 7..9
//	o agt_x rpl_y 42           replica rpl_y claimed agent agt_x, generation 42
//	o agt_x - 43               claim 43 of agt_x ended (nobody holds it)
//	r rpl_y                    replica rpl_y started or stopped
const (
	kindEvents  = 'e'
	kindOwner   = 'o'
	kindReplica = 'r'
)

// eventRange is one stored batch: its enterprise and sequences.
type eventRange struct {
	enterprise, first, last int64
}

type message struct {
	kind    byte
	ranges  []eventRange
	agent   string
	replica string // "" in an owner message: released
	gen     int64
}

var errMessage = errors.New("malformed cluster message")

// parseMessages reads a payload. Anything malformed is refused whole: a
// replica never acts on half a message.
func parseMessages(payload string) ([]message, error) {
	var out []message
	for line := range strings.SplitSeq(payload, "\n") {
		m, err := parseMessage(line)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func parseMessage(line string) (message, error) {
	f := strings.Split(line, " ")
	bad := func(why string) (message, error) {
		return message{}, fmt.Errorf("%w: %s: %.60q", errMessage, why, line)
	}
	if len(f[0]) != 1 {
		return bad("kind")
	}
	m := message{kind: f[0][0]}
	switch m.kind {
	case kindEvents:
		if len(f) < 2 {
			return bad("no range")
		}
		for _, r := range f[1:] {
			er, ok := parseRange(r)
			if !ok {
				return bad("range")
			}
			m.ranges = append(m.ranges, er)
		}
	case kindOwner:
		if len(f) != 4 || !isToken(f[1]) || (f[2] != "-" && !isToken(f[2])) {
			return bad("owner")
		}
		g, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || g < 1 {
			return bad("generation")
		}
		m.agent, m.gen = f[1], g
		if f[2] != "-" {
			m.replica = f[2]
		}
	case kindReplica:
		if len(f) != 2 || !isToken(f[1]) {
			return bad("replica")
		}
		m.replica = f[1]
	default:
		return bad("kind")
	}
	return m, nil
}

// parseRange reads "enterprise:first-last" with 0 < first <= last.
func parseRange(s string) (eventRange, bool) {
	e, seqs, ok1 := strings.Cut(s, ":")
	a, b, ok2 := strings.Cut(seqs, "-")
	if !ok1 || !ok2 {
		return eventRange{}, false
	}
	var r eventRange
	var err error
	if r.enterprise, err = strconv.ParseInt(e, 10, 64); err != nil || r.enterprise < 1 {
		return eventRange{}, false
	}
	if r.first, err = strconv.ParseInt(a, 10, 64); err != nil || r.first < 1 {
		return eventRange{}, false
	}
	if r.last, err = strconv.ParseInt(b, 10, 64); err != nil || r.last < r.first {
		return eventRange{}, false
	}
	return r, true
}

// isToken: ids are short and printable without spaces (agt_…, rpl_…).
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func ownerMessage(agent, replica string, gen int64) string {
	if replica == "" {
		replica = "-"
	}
	return "o " + agent + " " + replica + " " + strconv.FormatInt(gen, 10)
}

func replicaMessage(id string) string { return "r " + id }

// eventPayloads announces ranges in as few payloads as fit
// store.MaxNotifyPayload, merging each enterprise's consecutive ranges.
func eventPayloads(ranges []eventRange) []string {
	slices.SortFunc(ranges, func(a, b eventRange) int {
		if a.enterprise != b.enterprise {
			return cmp.Compare(a.enterprise, b.enterprise)
		}
		return cmp.Compare(a.first, b.first)
	})
	merged := ranges[:0:0]
	for _, r := range ranges {
		if n := len(merged); n > 0 && merged[n-1].enterprise == r.enterprise && r.first <= merged[n-1].last+1 {
			merged[n-1].last = max(merged[n-1].last, r.last)
			continue
		}
		merged = append(merged, r)
	}
	var out []string
	var b strings.Builder
	for _, r := range merged {
		part := strconv.FormatInt(r.enterprise, 10) + ":" + strconv.FormatInt(r.first, 10) + "-" + strconv.FormatInt(r.last, 10)
		if b.Len() > 0 && b.Len()+1+len(part) > store.MaxNotifyPayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString("e")
		}
		b.WriteString(" " + part)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
