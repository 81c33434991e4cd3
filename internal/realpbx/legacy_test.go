package realpbx

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
)

// testLegacy drives the drop-in routes of the old services against the
// real Asterisk: /health and /api/status, /api/makecallexternal (a call in
// Asterisk), /api/monitor with each seed code (ChanSpy with its options),
// and POST /api/v2/asterisk/call/hangup by channel (JSON) and by uniqueid
// (form), checked gone in Asterisk.
func testLegacy(l *lab, tn *tenant) {
	var health map[string]any
	code, body := l.do("GET", "/health", "", nil)
	mustJSON(l.t, "GET /health", code, body, http.StatusOK, &health)
	if health["status"] != "healthy" || health["service"] != "switchboard" {
		l.t.Errorf("/health: %s", body)
	}
	var status struct {
		Database string `json:"database"`
		Agents   struct {
			Connected, Total int
		} `json:"agents"`
	}
	// Counts are the caller's: its enterprise's PBXs (none without a credential).
	code, body = l.do("GET", "/api/status?clientId="+url.QueryEscape(tn.key), "", nil)
	mustJSON(l.t, "GET /api/status", code, body, http.StatusOK, &status)
	if status.Database != "connected" || status.Agents.Connected < 1 || status.Agents.Total < status.Agents.Connected {
		l.t.Errorf("/api/status: %s", body)
	}

	q := url.Values{"code": {"150"}, "phone": {"+375296254070"}, "clientId": {tn.key}}
	var mk struct {
		Success bool   `json:"success"`
		Message string `json:"message"`
	}
	code, body = l.do("GET", "/api/makecallexternal?"+q.Encode(), "", nil)
	mustJSON(l.t, "GET /api/makecallexternal", code, body, http.StatusOK, &mk)
	if !mk.Success || mk.Message != "Call initiated successfully: 150 -> +375296254070" {
		l.t.Errorf("makecallexternal: %s", body)
	}
	leg := l.channel("the legacy call's first leg", func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/150@inoffice-") && c.Application == "Dial" && c.Data == "Local/+375296254070@inoffice"
	})
	l.channel("the legacy call answered", func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/+375296254070@inoffice-") && c.State == "Up"
	})
	l.channel("the legacy call bridged", func(c asterisktest.Channel) bool { return c.UniqueID == leg.UniqueID && c.BridgeID != "" })

	for _, m := range []struct{ action, opts string }{{"09", "bq"}, {"01", "bqw"}, {"02", "Bbqw"}} {
		q := url.Values{"action": {m.action}, "target": {"150"}, "monitor_from": {"151"}, "clientId": {tn.key}}
		var mon struct {
			Success       bool   `json:"success"`
			Action        string `json:"action"`
			TargetChannel string `json:"target_channel"`
		}
		code, body := l.do("GET", "/api/monitor?"+q.Encode(), "", nil)
		mustJSON(l.t, "GET /api/monitor "+m.action, code, body, http.StatusOK, &mon)
		if !mon.Success || mon.Action != m.action || !strings.HasPrefix(leg.Name, mon.TargetChannel) {
			l.t.Errorf("monitor %s: %s", m.action, body)
		}
		spy := l.channel("ChanSpy of code "+m.action, func(c asterisktest.Channel) bool {
			return c.Application == "ChanSpy" && c.Data == mon.TargetChannel+","+m.opts
		})
		// The supervisor's channel, hung up with the JSON body. (ChanSpy
		// leaves once its silent target's call ends: see testMonitor.)
		var hu struct {
			Status bool `json:"status"`
			Data   struct {
				Channel  string `json:"channel"`
				UniqueID string `json:"uniqueid"`
			} `json:"data"`
		}
		code, body = l.do("POST", "/api/v2/asterisk/call/hangup", tn.jwt, map[string]any{"channel": spy.Name, "reason": "legacy " + m.action})
		mustJSON(l.t, "legacy hangup of the supervisor", code, body, http.StatusOK, &hu)
		if !hu.Status || hu.Data.Channel != spy.Name || hu.Data.UniqueID != spy.UniqueID {
			l.t.Errorf("legacy hangup of %s: %s", spy.Name, body)
		}
	}

	code, body = l.do("POST", "/api/v2/asterisk/call/hangup", tn.jwt, url.Values{"channel": {"Local/150@inoffice-ffffffff;1"}})
	var fail struct {
		Status  bool   `json:"status"`
		Message string `json:"message"`
	}
	mustJSON(l.t, "legacy hangup of an unknown channel", code, body, http.StatusNotFound, &fail)
	if fail.Status {
		l.t.Errorf("unknown channel: %s", body)
	}
	l.channel("the call, untouched by the refused hangup", byUniqueID(leg.UniqueID))

	code, body = l.do("POST", "/api/v2/asterisk/call/hangup", tn.jwt, url.Values{"uniqueid": {leg.UniqueID}, "reason": {"legacy form"}})
	var ok map[string]any
	mustJSON(l.t, "legacy hangup by uniqueid (form)", code, body, http.StatusOK, &ok)
	if raw, _ := json.Marshal(ok["data"]); ok["status"] != true || !strings.Contains(string(raw), leg.UniqueID) {
		l.t.Errorf("legacy hangup by uniqueid: %s", body)
	}
	l.channelsWhere("every channel gone (the call and its supervisors)", func(c []asterisktest.Channel) bool { return len(c) == 0 })
}
