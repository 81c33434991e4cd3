package cluster

import (
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

func TestParseMessages(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    []message
		bad     bool
	}{
		{"events", "e 12:100-105 13:7-7", []message{{kind: kindEvents, ranges: []eventRange{{12, 100, 105}, {13, 7, 7}}}}, false},
		{"claim", "o agt_x rpl_y 42", []message{{kind: kindOwner, agent: "agt_x", replica: "rpl_y", gen: 42}}, false},
		{"release", "o agt_x - 43", []message{{kind: kindOwner, agent: "agt_x", gen: 43}}, false},
		{"replica", "r rpl_y", []message{{kind: kindReplica, replica: "rpl_y"}}, false},
		{"several lines", "r rpl_a\ne 1:1-2", []message{{kind: kindReplica, replica: "rpl_a"}, {kind: kindEvents, ranges: []eventRange{{1, 1, 2}}}}, false},
		{"empty", "", nil, true},
		{"unknown kind", "x 1", nil, true},
		{"long kind", "ee 1:1-1", nil, true},
		{"no range", "e", nil, true},
		{"range backwards", "e 1:5-4", nil, true},
		{"zero first", "e 1:0-4", nil, true},
		{"zero enterprise", "e 0:1-4", nil, true},
		{"negative", "e 1:-1-4", nil, true},
		{"range not numbers", "e a:1-2", nil, true},
		{"owner short", "o agt_x rpl_y", nil, true},
		{"owner generation 0", "o agt_x rpl_y 0", nil, true},
		{"owner bad id", "o agt\x00x rpl_y 1", nil, true},
		{"replica extra", "r a b", nil, true},
		{"half bad", "r rpl_a\nx", nil, true},
		{"trailing space", "r rpl_a ", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMessages(tc.payload)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseMessages(%q) = %+v, want an error", tc.payload, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseMessages(%q) = %+v, %v; want %+v", tc.payload, got, err, tc.want)
			}
		})
	}
}

// TestEventPayloads: consecutive ranges of an enterprise merge, payloads
// stay under the NOTIFY limit, and every range comes back parsed.
func TestEventPayloads(t *testing.T) {
	got := eventPayloads([]eventRange{{2, 5, 6}, {1, 1, 3}, {1, 4, 4}, {1, 10, 12}, {2, 7, 9}})
	if want := []string{"e 1:1-4 1:10-12 2:5-9"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("eventPayloads = %q, want %q", got, want)
	}
	var many []eventRange
	for i := range int64(3000) {
		many = append(many, eventRange{enterprise: i + 1, first: 1_000_000 + i, last: 2_000_000 + i})
	}
	payloads := eventPayloads(many)
	if len(payloads) < 2 {
		t.Fatalf("%d payloads for 3000 enterprises, want several", len(payloads))
	}
	n := 0
	for _, p := range payloads {
		if len(p) > store.MaxNotifyPayload {
			t.Fatalf("payload of %d bytes", len(p))
		}
		ms, err := parseMessages(p)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ms[0].ranges)
	}
	if n != 3000 {
		t.Fatalf("%d ranges came back, want 3000", n)
	}
	if eventPayloads(nil) != nil {
		t.Fatal("payloads for no range")
	}
}

func FuzzParseMessages(f *testing.F) {
	for _, s := range []string{"e 12:100-105 13:7-9", "o agt_x rpl_y 42", "o agt_x - 43", "r rpl_y", "r a\ne 1:1-1", "e 1:9223372036854775807-9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		ms, err := parseMessages(payload)
		if err != nil {
			return
		}
		for _, m := range ms {
			switch m.kind {
			case kindEvents:
				if len(m.ranges) == 0 {
					t.Fatalf("%q: events without a range", payload)
				}
				for _, r := range m.ranges {
					if r.enterprise < 1 || r.first < 1 || r.last < r.first {
						t.Fatalf("%q: bad range %+v accepted", payload, r)
					}
				}
				// What was accepted is announced again the same way.
				for _, p := range eventPayloads(m.ranges) {
					if _, err := parseMessages(p); err != nil {
						t.Fatalf("%q: re-encoded as %q, which does not parse: %v", payload, p, err)
					}
				}
			case kindOwner:
				if !isToken(m.agent) || m.gen < 1 || (m.replica != "" && !isToken(m.replica)) {
					t.Fatalf("%q: bad owner message %+v accepted", payload, m)
				}
				if back, err := parseMessages(ownerMessage(m.agent, m.replica, m.gen)); err != nil || !reflect.DeepEqual(back, []message{m}) {
					t.Fatalf("%q: owner message does not round-trip: %+v, %v", payload, back, err)
				}
			case kindReplica:
				if !isToken(m.replica) || strings.ContainsAny(m.replica, " \n") {
					t.Fatalf("%q: bad replica id accepted", payload)
				}
			default:
				t.Fatalf("%q: kind %q accepted", payload, m.kind)
			}
		}
	})
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]eventRange{{2, 5, 6}, {1, 10, 12}, {1, 1, 3}, {2, 9, 9}, {3, 7, 7}})
	want := []eventRange{{2, 5, 9}, {1, 1, 12}, {3, 7, 7}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeRanges = %v, want %v", got, want)
	}
}
