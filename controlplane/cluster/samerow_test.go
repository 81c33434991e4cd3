package cluster

import (
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// TestSameRow: times compare as instants, any other field that differs
// makes a new view.
func TestSameRow(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	row := store.Owner{AgentID: "agt_1", ReplicaID: "r1", Generation: 3, SessionID: "ses_1", Since: at,
		Hostname: "pbx", AgentVersion: "1.2", Protocol: 2, AsteriskVersion: "22", AMI: "up", LiveChannels: 2, LiveCalls: 1, StatusAt: at}
	tests := []struct {
		name   string
		change func(*store.Owner)
		same   bool
	}{
		{"identical", func(*store.Owner) {}, true},
		{"times in another location", func(o *store.Owner) { o.Since, o.StatusAt = at.Local(), at.In(time.FixedZone("x", 3600)) }, true},
		{"since", func(o *store.Owner) { o.Since = at.Add(time.Second) }, false},
		{"status time", func(o *store.Owner) { o.StatusAt = at.Add(time.Second) }, false},
		{"calls", func(o *store.Owner) { o.LiveCalls = 2 }, false},
		{"generation", func(o *store.Owner) { o.Generation = 4 }, false},
		{"ami", func(o *store.Owner) { o.AMI = "down" }, false},
	}
	for _, tc := range tests {
		b := row
		tc.change(&b)
		if got := sameRow(row, b); got != tc.same {
			t.Errorf("%s: sameRow = %v, want %v", tc.name, got, tc.same)
		}
	}
}
