package realpbx

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestRealAsterisk runs the product against one real Asterisk: one
// control plane, one agent logged in with the full AMI user, and the cases
// below in order, each starting from a PBX with no channels.
func TestRealAsterisk(t *testing.T) {
	l := newLab(t)
	june := l.newTenant("0367", "june")
	l.startAgent(june, asterisktest.User)
	for _, tc := range []struct {
		name string
		run  func(l *lab, tn *tenant)
	}{
		{"originate_and_hangup_by_uniqueid", testOriginate},
		{"ringing_busy_and_hangup_by_channel", testRingingAndHangupByChannel},
		{"monitor_spy_whisper_barge", testMonitor},
		{"legacy_routes", testLegacy},
		{"queue_call_answered_by_operator", testQueueCall},
		{"events_resume_polling_and_websocket", testResume},
		{"asterisk_restart_under_the_agent", testAsteriskRestart},
		{"least_privilege_ami_user", testLeastPrivilege},
		// Call control (callcontrol_test.go).
		{"blind_transfer_moves_the_customer_to_160", testBlindTransfer},
		{"attended_transfer_completes_and_cancels", testAttendedTransfer},
		{"parked_call_listed_and_picked_up", testParkPickup},
		{"dtmf_while_50_requests_run", testDTMFUnderLoad},
		{"call_control_ami_privileges", testCallControlPrivileges},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt := l.with(t)
			lt.clean(june)
			tc.run(lt, june)
		})
	}
}

// with returns the lab reporting to t (a subtest).
func (l *lab) with(t testing.TB) *lab {
	c := *l
	c.t = t
	return &c
}

// testOriginate: POST /v1/calls makes Asterisk run Local/150 → Dial(Local/
// +375296254070); the call's first leg has the uniqueid the API returned;
// its events are started → answered (by the number called) → ended with
// cause 16 after DELETE /v1/calls/{id} removed every channel in Asterisk.
func testOriginate(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	first := l.channel("the call's first leg", running(id, "Dial"))
	if !strings.HasPrefix(first.Name, "Local/150@inoffice-") || !strings.HasSuffix(first.Name, ";1") ||
		first.Application != "Dial" || first.Data != "Local/+375296254070@inoffice" {
		l.t.Fatalf("first leg in Asterisk: %+v", first)
	}
	far := func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/+375296254070@inoffice-") && c.Application == "Wait" && c.State == "Up"
	}
	l.channel("the number called, answered", far)

	l.listed(tn, "GET /v1/channels listing "+first.Name, func(c protocol.Channel) bool { return c.UniqueID == id && c.Channel == first.Name })

	ans := l.waitEvent(tn, "call.answered of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallAnswered })
	if ans.AnsweredBy != "+375296254070" || ans.From != "150" || ans.To != "+375296254070" {
		l.t.Errorf("call.answered: %s", ans)
	}

	code, body := l.do("DELETE", "/v1/calls/"+id+"?reason=realpbx", tn.key, nil)
	mustJSON(l.t, "DELETE /v1/calls/{id}", code, body, http.StatusOK, nil)
	prefix := strings.TrimSuffix(first.Name, ";1")
	l.gone("the call's channels", func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, prefix) || far(c) })

	end := l.waitEvent(tn, "call.ended of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	if end.Cause != 16 || end.Status != protocol.CallCompleted {
		l.t.Errorf("call.ended: %s (cause_text %q)", end, end.CauseText)
	}
	got := types(l.callEvents(tn, id))
	t := l.t
	t.Logf("events of %s: %v", id, got)
}

// testRingingAndHangupByChannel: a number that rings and never answers
// gives call.ringing; POST /v1/calls/hangup by channel name ends it in
// Asterisk; an unknown channel is a 404 that leaves Asterisk alone; a
// busy number ends with Asterisk's busy cause.
func testRingingAndHangupByChannel(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "5550000")
	first := l.channel("the call's first leg", byUniqueID(id))
	ringing := func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/5550000@inoffice-") && c.State == "Ringing"
	}
	l.channel("5550000 ringing", ringing)
	l.waitEvent(tn, "call.ringing of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallRinging })

	code, body := l.do("POST", "/v1/calls/hangup", tn.jwt, map[string]any{"channel": first.Name + "x", "reason": "typo"})
	mustJSON(l.t, "hangup of an unknown channel", code, body, http.StatusNotFound, nil)
	l.channel("the call untouched by the refused hangup", byUniqueID(id))

	code, body = l.do("POST", "/v1/calls/hangup", tn.jwt, map[string]any{"channel": first.Name, "reason": "realpbx"})
	var res struct {
		Hungup []protocol.HungupChannel `json:"hungup"`
	}
	mustJSON(l.t, "POST /v1/calls/hangup by channel", code, body, http.StatusOK, &res)
	if len(res.Hungup) != 1 || res.Hungup[0].Channel != first.Name || res.Hungup[0].UniqueID != id {
		l.t.Errorf("hangup answered %s", body)
	}
	prefix := strings.TrimSuffix(first.Name, ";1")
	l.gone("the ringing call", func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, prefix) || ringing(c) })
	end := l.waitEvent(tn, "call.ended of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	if end.Status == protocol.CallCompleted || end.AnsweredBy != "" {
		l.t.Errorf("a call nobody answered ended as %s", end)
	}

	busy := l.originate(tn, "150", "5550001")
	end = l.waitEvent(tn, "call.ended of the busy call", func(e Event) bool { return e.CallID == busy && e.Type == protocol.EventCallEnded })
	if end.Status != protocol.CallBusy || end.Cause != 17 {
		l.t.Errorf("busy call ended as %s (cause_text %q)", end, end.CauseText)
	}
	l.t.Logf("ringing call: %v; busy call: %v", types(l.callEvents(tn, id)), types(l.callEvents(tn, busy)))
}

// testMonitor: POST /v1/monitor originates the supervisor's phone into
// ChanSpy on the target's live channel, with the options of each mode, and
// the monitored call gets call.monitor_started naming the supervisor.
//
// Ending it: Asterisk answers the supervisor's Hangup with "Channel Hungup",
// but a ChanSpy attached to a channel that carries no frames (Local
// channels here) only notices when its target's call ends; so each mode
// gets its own target call, hung up after the supervisor.
func testMonitor(l *lab, tn *tenant) {
	for _, m := range []struct{ mode, opts string }{
		{protocol.MonitorSpy, "bq"}, {protocol.MonitorWhisper, "bqw"}, {protocol.MonitorBarge, "Bbqw"},
	} {
		id := l.originate(tn, "150", "+375296254070")
		target := l.channel("the target's call", running(id, "Dial"))
		l.waitEvent(tn, "call.bridged of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallBridged })
		var res struct {
			CallID         string `json:"call_id"`
			TargetChannel  string `json:"target_channel"`
			TargetPrefix   string `json:"target_prefix"`
			ChanSpyOptions string `json:"chanspy_options"`
		}
		code, body := l.do("POST", "/v1/monitor", tn.jwt, map[string]any{"mode": m.mode, "target": "150", "from": "151"})
		mustJSON(l.t, "POST /v1/monitor "+m.mode, code, body, http.StatusCreated, &res)
		if res.ChanSpyOptions != m.opts || res.TargetChannel != target.Name {
			l.t.Errorf("monitor %s answered %s", m.mode, body)
		}
		spy := l.channel("ChanSpy of "+m.mode, running(res.CallID, "ChanSpy"))
		prefix := strings.TrimSuffix(target.Name, ";1")
		if !strings.HasPrefix(spy.Name, "Local/151@inoffice-") || spy.Application != "ChanSpy" ||
			spy.Data != res.TargetPrefix+","+m.opts || !strings.HasPrefix(prefix, res.TargetPrefix) {
			l.t.Errorf("%s: the supervisor's channel in Asterisk is %+v, want ChanSpy(%s,%s)", m.mode, spy, res.TargetPrefix, m.opts)
		}
		started := l.waitEvent(tn, "call.monitor_started of "+m.mode, func(e Event) bool {
			return e.Type == protocol.EventMonitorStarted && e.CallID == id && e.SpyChannel == spy.Name
		})
		if !strings.HasPrefix(started.TargetChannel, prefix) {
			l.t.Errorf("%s: monitor_started %s targets %q", m.mode, started, started.TargetChannel)
		}
		code, body = l.do("DELETE", "/v1/calls/"+res.CallID, tn.key, nil)
		mustJSON(l.t, "DELETE the supervisor's call", code, body, http.StatusOK, nil)
		code, body = l.do("DELETE", "/v1/calls/"+id, tn.key, nil)
		mustJSON(l.t, "DELETE the target's call", code, body, http.StatusOK, nil)
		l.channelsWhere("no channel left", func(c []asterisktest.Channel) bool { return len(c) == 0 })
	}

	id := l.originate(tn, "150", "+375296254070")
	l.channel("a call of 150", byUniqueID(id))
	code, body := l.do("POST", "/v1/monitor", tn.jwt, map[string]any{"mode": "spy", "target": "188", "from": "151"})
	mustJSON(l.t, "monitor of an extension with no call", code, body, http.StatusNotFound, nil)
	l.gone("a supervisor ringing into silence", func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, "Local/151@") })
}
