package realpbx

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// testQueueCall: a customer (+375291112233) calls 800 in context
// callcenter, which puts them in queue inbound; both operators'
// phones (Local/101@from-queue, Local/102@from-queue) ring and one takes
// the call. The call's events say which: call.answered has answered_by =
// the operator whose phone is the one left up in Asterisk.
func testQueueCall(l *lab, tn *tenant) { l.queueCall(tn) }

func (l *lab) queueCall(tn *tenant) {
	c := l.dialAMI(asterisktest.User)
	id := "realpbx-q-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	_, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/800@callcenter", "Application", "Wait", "Data", "600",
		"CallerID", `"Customer" <+375291112233>`, "ChannelId", id))
	if err != nil {
		l.t.Fatalf("originate the customer's call: %v", err)
	}
	l.channel("the customer waiting in queue inbound", func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/800@callcenter-") && c.Application == "Queue"
	})
	isOperator := func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/10") && strings.Contains(c.Name, "@from-queue-")
	}
	// Connected: one operator's phone is up and bridged, the other's gone.
	chans := l.channelsWhere("one operator on the call", func(cs []asterisktest.Channel) bool {
		var ops []asterisktest.Channel
		for _, c := range cs {
			if isOperator(c) {
				ops = append(ops, c)
			}
		}
		return len(ops) == 2 && ops[0].State == "Up" && ops[1].State == "Up" && ops[0].Name[:len("Local/10X")] == ops[1].Name[:len("Local/10X")] &&
			(ops[0].BridgeID != "" || ops[1].BridgeID != "")
	})
	op, _ := asterisktest.Find(chans, isOperator)
	operator := strings.TrimPrefix(op.Name, "Local/")[:3]
	out, err := l.pbx.CLI(l.ctx(), "queue show inbound")
	if err != nil || !strings.Contains(out, "Local/"+operator+"@from-queue/n") {
		l.t.Fatalf("queue show inbound: %v\n%s", err, out)
	}

	ans := l.waitEvent(tn, "call.answered of the queue call", func(e Event) bool {
		return e.Type == protocol.EventCallAnswered && (e.CallID == id || e.LinkedID == id)
	})
	if ans.AnsweredBy != operator || ans.From != "+375291112233" {
		l.t.Errorf("call.answered %s, want answered_by %s (the operator up in Asterisk: %s) from +375291112233", ans, operator, op.Name)
	}
	code, body := l.do("DELETE", "/v1/calls/"+ans.CallID+"?reason=realpbx", tn.key, nil)
	mustJSON(l.t, "DELETE the queue call", code, body, http.StatusOK, nil)
	end := l.waitEvent(tn, "call.ended of the queue call", func(e Event) bool { return e.Type == protocol.EventCallEnded && e.CallID == ans.CallID })
	if end.AnsweredBy != operator || end.Status != protocol.CallCompleted {
		l.t.Errorf("call.ended %s, want answered_by %s, completed", end, operator)
	}
	l.t.Logf("queue call %s answered by %s: %v", ans.CallID, operator, types(l.callEvents(tn, ans.CallID)))
}
