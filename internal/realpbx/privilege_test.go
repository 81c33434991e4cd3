package realpbx

import (
	"net/http"
	"strings"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// testLeastPrivilege: a second enterprise's agent logs in to the same
// Asterisk as switchboard-min (read system,call,cdr,agent; write
// originate,call,reporting,agent: packaging/manager.conf.example). Originate,
// channels, monitor, hangup by uniqueid, by channel and of everything all
// work, checked in Asterisk; its calls' events arrive, and a queue call
// names the operator who took it.
func testLeastPrivilege(l *lab, _ *tenant) {
	tn := l.newTenant("0368", "minpriv")
	l.startAgent(tn, asterisktest.MinUser)
	defer l.clean(tn)

	id := l.originate(tn, "150", "+375296254070")
	first := l.channel("the call placed by the least-privilege agent", running(id, "Dial"))
	if first.Application != "Dial" || first.Data != "Local/+375296254070@inoffice" {
		l.t.Fatalf("in Asterisk: %+v", first)
	}
	l.waitEvent(tn, "call.bridged", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })

	l.listed(tn, "GET /v1/channels listing the call", func(c protocol.Channel) bool { return c.UniqueID == id })

	var mon struct {
		CallID string `json:"call_id"`
	}
	code, body := l.do("POST", "/v1/monitor", tn.jwt, map[string]any{"mode": "barge", "target": "150", "from": "151"})
	mustJSON(l.t, "POST /v1/monitor", code, body, http.StatusCreated, &mon)
	spy := l.channel("ChanSpy", running(mon.CallID, "ChanSpy"))
	if spy.Application != "ChanSpy" || !strings.HasSuffix(spy.Data, ",Bbqw") {
		l.t.Errorf("supervisor in Asterisk: %+v", spy)
	}
	l.waitEvent(tn, "call.monitor_started", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventMonitorStarted })

	code, body = l.do("POST", "/v1/calls/hangup", tn.jwt, map[string]any{"channel": spy.Name})
	mustJSON(l.t, "hangup by channel", code, body, http.StatusOK, nil)
	code, body = l.do("DELETE", "/v1/calls/"+id, tn.key, nil)
	mustJSON(l.t, "hangup by uniqueid", code, body, http.StatusOK, nil)
	l.channelsWhere("every channel gone", func(c []asterisktest.Channel) bool { return len(c) == 0 })
	end := l.waitEvent(tn, "call.ended", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	if end.Cause != 16 {
		l.t.Errorf("call.ended: %s", end)
	}

	// Hangup of every channel: Hangup with a /regex/, an event list.
	for _, to := range []string{"+375296254070", "+375296254071"} {
		l.originate(tn, "150", to)
	}
	l.channelsWhere("two calls up", func(c []asterisktest.Channel) bool { return len(c) == 8 })
	var all struct {
		Hungup []protocol.HungupChannel `json:"hungup"`
	}
	code, body = l.do("POST", "/v1/calls/hangup", tn.jwt, map[string]any{"all": true})
	mustJSON(l.t, "hangup all", code, body, http.StatusOK, &all)
	if len(all.Hungup) == 0 {
		l.t.Errorf("hangup all: %s", body)
	}
	l.channelsWhere("every channel gone after hangup all", func(c []asterisktest.Channel) bool { return len(c) == 0 })

	// Who took a queue call (from the call's Dial events; the queue's own
	// events, class agent, add queue.caller_*).
	l.queueCall(tn)
	l.clean(tn)

	// CoreSettings (reporting) gave the agent Asterisk's version.
	var pbxs struct {
		PBXs []struct {
			AsteriskVersion string `json:"asterisk_version"`
		} `json:"pbxs"`
	}
	code, body = l.do("GET", "/v1/pbxs", tn.key, nil)
	mustJSON(l.t, "GET /v1/pbxs", code, body, http.StatusOK, &pbxs)
	if len(pbxs.PBXs) != 1 || !strings.HasPrefix(pbxs.PBXs[0].AsteriskVersion, "22.") {
		l.t.Errorf("the least-privilege agent's PBX: %s", body)
	}
}
