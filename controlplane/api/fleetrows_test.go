package api

import (
	"bytes"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestReplyFleetEncodesLikeReply checks that the fleet view written from
// cached rows is byte for byte what encoding fleetResponse gives, also
// after an agent's status, store row or connection changed between two
// requests (a stale cached row would show).
func TestReplyFleetEncodesLikeReply(t *testing.T) {
	now := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	agents := []store.Agent{
		{ID: "agt_a", EnterpriseNumber: "0367", Name: "main <office>", Context: "inoffice", LastSeenAt: now.Add(-time.Hour)},
		{ID: "agt_b", EnterpriseNumber: "0367", Name: "spare", Context: "inoffice"},
		{ID: "agt_c", EnterpriseNumber: "0368", Name: "old", Context: "x", RevokedAt: now.Add(-time.Minute)},
	}
	conn := fleet.NewConn("agt_a", 1, nil, protocol.Hello{Protocol: protocol.Version, AgentVersion: "1.2", Hostname: "pbx-a", AMI: protocol.AMIUp}, now)
	a := &API{}
	check := func(t *testing.T, conns map[string]*fleet.Conn, next string) {
		t.Helper()
		want := fleetResponse{Totals: fleetTotals{Agents: 2, Connected: 1, AMIUp: 1}, Matched: 3, Agents: []fleetAgent{}, NextCursor: next}
		var page []fleetPick
		for i, ag := range agents {
			page = append(page, fleetPick{ag: &agents[i], conn: conns[ag.ID]})
			want.Agents = append(want.Agents, fleetAgent{Enterprise: ag.EnterpriseNumber, Revoked: ag.Revoked(), pbxView: viewPBX(ag, conns[ag.ID])})
		}
		wantBody, err := encode(styleV1, want)
		if err != nil {
			t.Fatal(err)
		}
		c := &call{rt: &route{style: styleV1}, authorized: true}
		if err := a.replyFleet(c, want.Totals, want.Matched, page, next); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.body, wantBody) {
			t.Fatalf("fleet body\n got %s\nwant %s", c.body, wantBody)
		}
		c.release()
	}
	conns := map[string]*fleet.Conn{"agt_a": conn}
	check(t, conns, "")
	check(t, conns, "agt_c") // every row from the cache
	conn.SetStatus(protocol.Status{AMI: protocol.AMIDown, LiveChannels: 3, LiveCalls: 1, AgentVersion: "1.3"}, now.Add(time.Second))
	check(t, conns, "")
	agents[1].Name = "renamed"
	agents[1].LastSeenAt = now
	check(t, conns, "")
	conns["agt_b"] = fleet.NewConn("agt_b", 1, nil, protocol.Hello{Protocol: 1, AMI: protocol.AMIDown}, now)
	delete(conns, "agt_a")
	check(t, conns, "")
}
