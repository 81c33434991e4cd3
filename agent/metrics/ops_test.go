package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/agent"
)

type fakeWithOps struct {
	fake
	ops agent.CallCentreStats
}

func (f *fakeWithOps) CallCentreStats() agent.CallCentreStats { return f.ops }

func TestUnconfirmedOperations(t *testing.T) {
	f := &fakeWithOps{ops: agent.CallCentreStats{Unconfirmed: 3}}
	rec := httptest.NewRecorder()
	Handler(f).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "switchboard_agent_queue_recording_unconfirmed_total 3\n") {
		t.Fatalf("metrics lack the unconfirmed counter:\n%s", rec.Body.String())
	}
}
