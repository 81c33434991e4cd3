package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/agent/outbox"
	"github.com/switchboard-pbx/switchboard/protocol"
)

type fake struct {
	st     protocol.Status
	ob     outbox.Stats
	ss     agent.StreamStats
	stats  ops.Stats
	dtmfUp bool
}

func (f *fake) Status() protocol.Status        { return f.st }
func (f *fake) OutboxStats() outbox.Stats      { return f.ob }
func (f *fake) StreamStats() agent.StreamStats { return f.ss }
func (f *fake) OpsStats() ops.Stats            { return f.stats }
func (f *fake) DTMFSessionUp() bool            { return f.dtmfUp }

func TestHandlerReadsAtScrapeTime(t *testing.T) {
	f := &fake{st: protocol.Status{AMI: protocol.AMIUp, LiveChannels: 4, LiveCalls: 2}, ob: outbox.Stats{Pending: 7, NextSeq: 101, Lost: 3, Truncated: 5, TooLarge: 1},
		ss: agent.StreamStats{FramesRefused: 2, AckWaits: 9}}
	h := Handler(f)
	scrape := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	out := scrape()
	for _, want := range []string{
		"switchboard_agent_ami_up 1", "switchboard_agent_live_channels 4", "switchboard_agent_live_calls 2",
		"switchboard_agent_events_pending 7", "switchboard_agent_events_total 100", "switchboard_agent_events_lost_total 3",
		"switchboard_agent_events_truncated_total 5", "switchboard_agent_events_too_large_total 1",
		"switchboard_agent_event_frames_refused_total 2", "switchboard_agent_event_ack_waits_total 9",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	f.st.AMI = protocol.AMIDown
	if out := scrape(); !strings.Contains(out, "switchboard_agent_ami_up 0\n") {
		t.Error("AMI down not reflected at the next scrape")
	}
}

func TestOpsMetrics(t *testing.T) {
	f := &fake{stats: ops.Stats{Unconfirmed: map[string]uint64{"transfer": 2, "dtmf": 1, "queue_member_pause": 3, "park": 0},
		Transfers: 3, TransfersRefused: 4}, dtmfUp: true}
	rec := httptest.NewRecorder()
	Handler(f).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`switchboard_agent_operations_unconfirmed_total{op="dtmf"} 1`, `switchboard_agent_operations_unconfirmed_total{op="transfer"} 2`,
		`switchboard_agent_operations_unconfirmed_total{op="queue_member_pause"} 3`, `switchboard_agent_operations_unconfirmed_total{op="park"} 0`,
		"switchboard_agent_ami_dtmf_up 1", "switchboard_agent_attended_transfers 3", "switchboard_agent_attended_transfers_refused_total 4",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}
