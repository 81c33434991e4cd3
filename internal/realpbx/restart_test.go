package realpbx

import (
	"context"
	"net/http"
	"strings"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
)

// testAsteriskRestart: Asterisk stops under a running agent. The agent
// reports AMI down, calls are refused with ami_down (503) and nothing is
// sent anywhere; Asterisk comes back on the same port, the agent logs in
// again by itself, reports AMI up, and calls work again.
func testAsteriskRestart(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.channel("a call before the restart", byUniqueID(id))

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := l.pbx.Stop(ctx); err != nil {
		l.t.Fatal(err)
	}
	l.waitAMI(tn, "down")
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	code, body := l.do("POST", "/v1/calls", tn.key, map[string]any{"from": "150", "to": "+375296254070"})
	mustJSON(l.t, "originate with Asterisk down", code, body, http.StatusServiceUnavailable, &e)
	if e.Error.Code != "ami_down" {
		l.t.Errorf("originate with Asterisk down: %s", body)
	}

	if err := l.pbx.Start(ctx); err != nil {
		l.t.Fatal(err)
	}
	l.waitAMI(tn, "up")
	// The call that was up died with Asterisk; the table has forgotten it.
	code, body = l.do("DELETE", "/v1/calls/"+id, tn.key, nil)
	mustJSON(l.t, "hang up a call of the stopped Asterisk", code, body, http.StatusNotFound, nil)

	again := l.originate(tn, "150", "+375296254070")
	first := l.channel("a call after the restart", running(again, "Dial"))
	if !strings.HasPrefix(first.Name, "Local/150@inoffice-") || first.Application != "Dial" {
		l.t.Errorf("after the restart: %+v", first)
	}
	l.gone("channels of the old Asterisk", func(c asterisktest.Channel) bool { return c.UniqueID == id })
}
