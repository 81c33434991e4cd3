package realpbx

import (
	"net/http"
	"slices"
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
	first := l.channel("the call's first leg", byUniqueID(id))
	if !strings.HasPrefix(first.Name, "Local/150@inoffice-") || !strings.HasSuffix(first.Name, ";1") ||
		first.Application != "Dial" || first.Data != "Local/+375296254070@inoffice" {
		l.t.Fatalf("first leg in Asterisk: %+v", first)
	}
	far := func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/+375296254070@inoffice-") && c.Application == "Wait" && c.State == "Up"
	}
	l.channel("the number called, answered", far)

	var chans struct {
		Channels []protocol.Channel `json:"channels"`
	}
	code, body := l.do("GET", "/v1/channels", tn.key, nil)
	mustJSON(l.t, "GET /v1/channels", code, body, http.StatusOK, &chans)
	if !slices.ContainsFunc(chans.Channels, func(c protocol.Channel) bool { return c.UniqueID == id && c.Channel == first.Name }) {
		l.t.Fatalf("GET /v1/channels does not list %s (%s): %s", first.Name, id, body)
	}

	ans := l.waitEvent(tn, "call.answered of "+id, func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallAnswered })
	if ans.AnsweredBy != "+375296254070" || ans.From != "150" || ans.To != "+375296254070" {
		l.t.Errorf("call.answered: %s", ans)
	}

	code, body = l.do("DELETE", "/v1/calls/"+id+"?reason=realpbx", tn.key, nil)
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
